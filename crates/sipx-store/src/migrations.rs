//! Migrations are compiled into the binary (no files needed beside it) and applied at start.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "apps and sip accounts",
        include_str!("../migrations/0001_apps_and_sip_accounts.sql"),
    ),
    (
        2,
        "registrations",
        include_str!("../migrations/0002_registrations.sql"),
    ),
    (3, "trunks", include_str!("../migrations/0003_trunks.sql")),
    (
        4,
        "srtp policy",
        include_str!("../migrations/0004_srtp_policy.sql"),
    ),
    (5, "calls", include_str!("../migrations/0005_calls.sql")),
    (
        6,
        "webhooks",
        include_str!("../migrations/0006_webhooks.sql"),
    ),
    (
        7,
        "routing rules",
        include_str!("../migrations/0007_routing_rules.sql"),
    ),
    (
        8,
        "registration path",
        include_str!("../migrations/0008_registration_path.sql"),
    ),
    (
        9,
        "deliveries follow the app url",
        include_str!("../migrations/0009_deliveries_follow_the_app_url.sql"),
    ),
    (
        10,
        "number rules and codecs",
        include_str!("../migrations/0010_number_rules_and_codecs.sql"),
    ),
];

pub(crate) fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}
