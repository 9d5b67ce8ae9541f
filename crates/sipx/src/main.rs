//! `sipx`: the one binary. Parses the command line, loads the configuration, and hands over to
//! `sipx-server`. Every startup failure is one line on stderr and a non-zero exit.

mod apps_cli;

// SIP handling allocates per message; mimalloc keeps that cheap on every thread. It is built
// without transparent huge pages (feature `no_thp`): with them, every page it gave back and
// took again under call churn came back as a 2 MB page the kernel had to zero.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use sipx_server::config::{LogFormat, Overrides};
use sipx_server::{App, Config, StartupError};

#[derive(Parser)]
#[command(
    name = "sipx",
    version,
    about = "SIPx puts phone calls into real-time rooms"
)]
struct Cli {
    /// TOML configuration file (also `SIPX_CONFIG`).
    #[arg(long, global = true, env = "SIPX_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: database, generated keys, dev certificates.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (API now; SIP, media and rooms as they land).
    Serve {
        /// HTTP API listen address (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Serve HTTPS with a self-signed certificate created in the data directory.
        #[arg(long)]
        dev_tls: bool,
    },
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Manage applications (tenants) in the local database.
    #[command(subcommand)]
    Apps(apps_cli::AppsCommand),
    /// Print the OpenAPI 3.0 document.
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides::default();
    if let Some(dir) = &cli.data_dir {
        overrides.set("data_dir", dir);
    }
    if let Some(format) = cli.log_format {
        overrides.set(
            "log.format",
            match format {
                LogFormatArg::Human => LogFormat::Human,
                LogFormatArg::Json => LogFormat::Json,
            },
        );
    }
    if let Command::Serve { listen, dev_tls } = &cli.command {
        if let Some(addr) = listen {
            overrides.set("http.listen", addr);
        }
        if *dev_tls {
            overrides.set("http.tls.dev", true);
        }
    }
    if let Command::Openapi = cli.command {
        print!("{}", sipx_api::openapi::openapi_json());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(cli.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => return fail(&e),
    };
    match cli.command {
        Command::Config => {
            print!("{}", config.to_redacted_toml());
            ExitCode::SUCCESS
        }
        Command::Serve { .. } => serve(config),
        Command::Apps(cmd) => apps_cli::run(&config, cmd),
        Command::Openapi => ExitCode::SUCCESS,
    }
}

fn serve(config: Config) -> ExitCode {
    sipx_server::logging::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sipx: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let signals = match sipx_server::signals() {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        let app = match App::build(config).await {
            Ok(app) => app,
            Err(e) => return fail(&e),
        };
        app.run(signals).await;
        ExitCode::SUCCESS
    })
}

fn fail(e: &StartupError) -> ExitCode {
    eprintln!("sipx: {e}");
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
}
