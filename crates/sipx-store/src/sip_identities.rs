//! Everything by which SIP traffic is told to belong to an application, across all of them:
//! the networks trunks take calls from, and the user names SIP authenticates (trunks' inbound
//! digest users, SIP accounts, application keys). The API reads it to refuse one
//! application's trunk or account that would take another's calls or logins.

use sqlx::Row;

use crate::{Store, StoreError};

/// One thing that claims SIP traffic for an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipClaim {
    pub app_id: String,
    /// The trunk's or account's id, or the application's for its key.
    pub owner_id: String,
    /// The user name it authenticates, if any.
    pub username: Option<String>,
    /// The networks a trunk takes calls from (none for accounts and keys).
    pub networks: Vec<String>,
}

impl Store {
    /// Every trunk's inbound user and networks, every SIP account's user, every application's
    /// key.
    pub async fn sip_claims(&self) -> Result<Vec<SipClaim>, StoreError> {
        let mut claims = Vec::new();
        for row in sqlx::query("SELECT id, app_id, inbound_username, inbound_cidrs FROM trunks")
            .fetch_all(&self.pool)
            .await?
        {
            let cidrs: String = row.try_get("inbound_cidrs")?;
            claims.push(SipClaim {
                app_id: row.try_get("app_id")?,
                owner_id: row.try_get("id")?,
                username: row.try_get("inbound_username")?,
                networks: crate::words(&cidrs),
            });
        }
        for row in sqlx::query("SELECT id, app_id, username FROM sip_accounts")
            .fetch_all(&self.pool)
            .await?
        {
            claims.push(SipClaim {
                app_id: row.try_get("app_id")?,
                owner_id: row.try_get("id")?,
                username: Some(row.try_get("username")?),
                networks: Vec::new(),
            });
        }
        for row in sqlx::query("SELECT id, api_key FROM apps")
            .fetch_all(&self.pool)
            .await?
        {
            let id: String = row.try_get("id")?;
            claims.push(SipClaim {
                app_id: id.clone(),
                owner_id: id,
                username: Some(row.try_get("api_key")?),
                networks: Vec::new(),
            });
        }
        Ok(claims)
    }
}
