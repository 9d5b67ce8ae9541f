//! `sipx apps …`: operator commands on the local database, for when no API credential exists
//! yet (the first application is created here).

use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use clap::Subcommand;
use sipx_server::Config;
use sipx_store::{AppRecord, AppUpdate, PageRequest, Store};

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Create an application and print its API key and secret (shown this once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List applications.
    List,
    /// Disable an application (its API requests answer 403 at once, SIP registrations with its
    /// key within 5 s). Takes an id, API key or name.
    Disable { app: String },
    /// Enable a disabled application.
    Enable { app: String },
    /// Issue a new secret; the old one stops working at once for the API, and within 5 s for
    /// SIP registrations with the application key (a running SIPx reads accounts again then).
    RotateSecret { app: String },
}

pub fn run(config: &Config, cmd: AppsCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sipx: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_async(config, cmd)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sipx: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_async(config: &Config, cmd: AppsCommand) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)?;
    let master = sipx_server::load_master_key(config)?;
    let store = Store::open(&config.data_dir.join("sipx.db"), master).await?;
    let find = async |needle: &str| -> anyhow::Result<AppRecord> {
        let mut found = store.find_app(needle).await?;
        match found.len() {
            0 => anyhow::bail!("no application matches {needle:?} (give its id or API key)"),
            1 => Ok(found.remove(0)),
            n => anyhow::bail!(
                "{n} applications are named {needle:?}: give the id or API key of one (sipx apps list)"
            ),
        }
    };
    match cmd {
        AppsCommand::Create { name } => {
            if name.trim().is_empty() || name.chars().count() > 100 {
                anyhow::bail!("the name must be 1 to 100 characters");
            }
            let (app, secret) = store.create_app(&name).await?;
            println!("created application {} ({:?})", app.id, app.name);
            println!("api_key:    {}", app.api_key);
            println!("api_secret: {}", secret.expose());
            println!("The secret is shown only now: store it safely.");
        }
        AppsCommand::List => {
            println!(
                "{:<32} {:<22} {:<9} {:<25} NAME",
                "ID", "API KEY", "STATUS", "CREATED"
            );
            let mut page = PageRequest {
                after: None,
                limit: 200,
            };
            loop {
                let batch = store.list_apps(&page).await?;
                for a in &batch.items {
                    let created = UNIX_EPOCH + Duration::from_millis(a.created_at_ms.max(0) as u64);
                    println!(
                        "{:<32} {:<22} {:<9} {:<25} {}",
                        a.id,
                        a.api_key,
                        if a.disabled { "disabled" } else { "enabled" },
                        humantime::format_rfc3339_seconds(created).to_string(),
                        a.name
                    );
                }
                match batch.next_after {
                    Some(after) => page.after = Some(after),
                    None => break,
                }
            }
        }
        AppsCommand::Disable { app } => set_disabled(&store, &find(&app).await?, true).await?,
        AppsCommand::Enable { app } => set_disabled(&store, &find(&app).await?, false).await?,
        AppsCommand::RotateSecret { app } => {
            let app = find(&app).await?;
            let (app, secret) = store
                .rotate_app_secret(&app.id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the application disappeared"))?;
            println!("rotated the secret of {} ({:?})", app.id, app.name);
            println!("api_key:    {}", app.api_key);
            println!("api_secret: {}", secret.expose());
        }
    }
    store.close().await;
    Ok(())
}

async fn set_disabled(store: &Store, app: &AppRecord, disabled: bool) -> anyhow::Result<()> {
    let update = AppUpdate {
        disabled: Some(disabled),
        ..AppUpdate::default()
    };
    store.update_app(&app.id, &update).await?;
    println!(
        "{} {}",
        if disabled { "disabled" } else { "enabled" },
        app.id
    );
    Ok(())
}
