//! SIP accounts: the credentials gateways and phones REGISTER with. Owned by one application.

use sipx_secrets::Redacted;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;

use crate::{Page, PageRequest, SrtpPolicy, Store, StoreError, words};

/// A SIP account as stored, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipAccountRecord {
    pub id: String,
    pub app_id: String,
    pub username: String,
    /// Source networks allowed to register; empty means any.
    pub allowed_cidrs: Vec<String>,
    pub max_bindings: u32,
    pub enabled: bool,
    pub description: Option<String>,
    /// SRTP policy of calls from the account's registered devices; `None`: the server's.
    pub srtp: Option<SrtpPolicy>,
    /// `number` (the dialled number in the Request-URI of calls to its devices) or `contact`.
    pub dial_request_uri: String,
    /// JSON array of rewrite rules for the numbers of its devices' calls, validated by the API.
    pub number_rules: String,
    /// Codec names in order of preference; `None`: the server's.
    pub codecs: Option<Vec<String>>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone)]
pub struct NewSipAccount {
    pub username: String,
    pub password: Redacted<String>,
    pub allowed_cidrs: Vec<String>,
    pub max_bindings: u32,
    pub enabled: bool,
    pub description: Option<String>,
    pub srtp: Option<SrtpPolicy>,
    pub dial_request_uri: String,
    pub number_rules: String,
    pub codecs: Option<Vec<String>>,
}

/// `None` leaves a field unchanged; `description: Some(None)` clears it, and so does
/// `srtp: Some(None)` (back to the server's policy).
#[derive(Debug, Clone, Default)]
pub struct SipAccountUpdate {
    pub password: Option<Redacted<String>>,
    pub allowed_cidrs: Option<Vec<String>>,
    pub max_bindings: Option<u32>,
    pub enabled: Option<bool>,
    pub description: Option<Option<String>>,
    pub srtp: Option<Option<SrtpPolicy>>,
    pub dial_request_uri: Option<String>,
    pub number_rules: Option<String>,
    /// `Some(None)` returns the account to the server's codecs.
    pub codecs: Option<Option<Vec<String>>>,
}

/// What the SIP core applies to the calls of an account's devices, for an account that sets
/// anything of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCallSettings {
    pub username: String,
    /// `None`: the server's.
    pub srtp: Option<SrtpPolicy>,
    /// JSON array, as [`SipAccountRecord::number_rules`].
    pub number_rules: String,
    /// `None`: the server's.
    pub codecs: Option<Vec<String>>,
}

const COLUMNS: &str = "id, app_id, username, allowed_cidrs, max_bindings, enabled, description, \
                       srtp, dial_request_uri, number_rules, codecs, created_at_ms, \
                       updated_at_ms";

fn password_context(id: &str) -> String {
    format!("sip-password:{id}")
}

fn join_cidrs(cidrs: &[String]) -> String {
    cidrs.join(" ")
}

fn from_row(row: &SqliteRow) -> Result<SipAccountRecord, sqlx::Error> {
    let cidrs: String = row.try_get("allowed_cidrs")?;
    let max_bindings: i64 = row.try_get("max_bindings")?;
    let codecs: Option<String> = row.try_get("codecs")?;
    Ok(SipAccountRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        username: row.try_get("username")?,
        allowed_cidrs: words(&cidrs),
        max_bindings: u32::try_from(max_bindings).unwrap_or(0),
        enabled: row.try_get("enabled")?,
        description: row.try_get("description")?,
        srtp: crate::srtp::from_column(row.try_get("srtp")?),
        dial_request_uri: row.try_get("dial_request_uri")?,
        number_rules: row.try_get("number_rules")?,
        codecs: codecs.as_deref().map(words),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

impl Store {
    pub async fn create_sip_account(
        &self,
        app_id: &str,
        new: &NewSipAccount,
    ) -> Result<SipAccountRecord, StoreError> {
        let id = format!("sipacct_{}", ulid::Ulid::new().to_string().to_lowercase());
        let now = now_ms();
        let sealed = self
            .master
            .seal(&password_context(&id), new.password.expose().as_bytes());
        sqlx::query(
            "INSERT INTO sip_accounts (id, app_id, username, password_sealed, allowed_cidrs,
             max_bindings, enabled, description, srtp, dial_request_uri, number_rules, codecs,
             created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(app_id)
        .bind(&new.username)
        .bind(sealed)
        .bind(join_cidrs(&new.allowed_cidrs))
        .bind(i64::from(new.max_bindings))
        .bind(new.enabled)
        .bind(new.description.as_deref())
        .bind(new.srtp.map(SrtpPolicy::as_str))
        .bind(&new.dial_request_uri)
        .bind(&new.number_rules)
        .bind(new.codecs.as_ref().map(|c| c.join(" ")))
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        self.changed().await;
        Ok(SipAccountRecord {
            id,
            app_id: app_id.to_owned(),
            username: new.username.clone(),
            allowed_cidrs: new.allowed_cidrs.clone(),
            max_bindings: new.max_bindings,
            enabled: new.enabled,
            description: new.description.clone(),
            srtp: new.srtp,
            dial_request_uri: new.dial_request_uri.clone(),
            number_rules: new.number_rules.clone(),
            codecs: new.codecs.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        })
    }

    pub async fn list_sip_accounts(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Page<SipAccountRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM sip_accounts WHERE app_id = ? AND id > ? ORDER BY id LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit, |a| a.id.clone()))
    }

    pub async fn get_sip_account(
        &self,
        app_id: &str,
        id: &str,
    ) -> Result<Option<SipAccountRecord>, StoreError> {
        self.sip_account_where(app_id, "id", id).await
    }

    /// The account of `app_id` that registers as `username`.
    pub async fn sip_account_by_username(
        &self,
        app_id: &str,
        username: &str,
    ) -> Result<Option<SipAccountRecord>, StoreError> {
        self.sip_account_where(app_id, "username", username).await
    }

    /// The account of `app_id` whose `column` (a fixed column name, never input) is `value`.
    async fn sip_account_where(
        &self,
        app_id: &str,
        column: &'static str,
        value: &str,
    ) -> Result<Option<SipAccountRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM sip_accounts WHERE app_id = ? AND {column} = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn update_sip_account(
        &self,
        app_id: &str,
        id: &str,
        update: &SipAccountUpdate,
    ) -> Result<Option<SipAccountRecord>, StoreError> {
        let sealed = update.password.as_ref().map(|p| {
            self.master
                .seal(&password_context(id), p.expose().as_bytes())
        });
        let (set_description, description) = match &update.description {
            Some(d) => (true, d.as_deref()),
            None => (false, None),
        };
        let (set_srtp, srtp) = match update.srtp {
            Some(p) => (true, p.map(SrtpPolicy::as_str)),
            None => (false, None),
        };
        let (set_codecs, codecs) = match &update.codecs {
            Some(c) => (true, c.as_ref().map(|c| c.join(" "))),
            None => (false, None),
        };
        sqlx::query(
            "UPDATE sip_accounts SET
               password_sealed = COALESCE(?, password_sealed),
               allowed_cidrs = COALESCE(?, allowed_cidrs),
               max_bindings = COALESCE(?, max_bindings),
               enabled = COALESCE(?, enabled),
               description = CASE WHEN ? THEN ? ELSE description END,
               srtp = CASE WHEN ? THEN ? ELSE srtp END,
               dial_request_uri = COALESCE(?, dial_request_uri),
               number_rules = COALESCE(?, number_rules),
               codecs = CASE WHEN ? THEN ? ELSE codecs END,
               updated_at_ms = ?
             WHERE app_id = ? AND id = ?",
        )
        .bind(sealed)
        .bind(update.allowed_cidrs.as_deref().map(join_cidrs))
        .bind(update.max_bindings.map(i64::from))
        .bind(update.enabled)
        .bind(set_description)
        .bind(description)
        .bind(set_srtp)
        .bind(srtp)
        .bind(update.dial_request_uri.as_deref())
        .bind(update.number_rules.as_deref())
        .bind(set_codecs)
        .bind(codecs)
        .bind(now_ms())
        .bind(app_id)
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.changed().await;
        self.get_sip_account(app_id, id).await
    }

    /// Deletes the account; `false` when the application has no such account.
    pub async fn delete_sip_account(&self, app_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sip_accounts WHERE app_id = ? AND id = ?")
            .bind(app_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed().await;
        Ok(done.rows_affected() > 0)
    }

    /// Every name a device may register with, and its application: the SIP accounts'
    /// usernames and the applications' API keys (devices set up for the first SIPx). The SIP
    /// core drops bindings whose name is no longer among them.
    pub async fn registrants(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT username, app_id FROM sip_accounts UNION ALL SELECT api_key, id FROM apps",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// The SRTP policy, number rules and codecs of every account that sets any, by username: the
    /// SIP core's view for calls from registered devices (the others follow the server's).
    pub async fn sip_account_call_settings(&self) -> Result<Vec<AccountCallSettings>, StoreError> {
        let rows: Vec<(String, Option<String>, String, Option<String>)> = sqlx::query_as(
            "SELECT username, srtp, number_rules, codecs FROM sip_accounts
             WHERE srtp IS NOT NULL OR number_rules != '[]' OR codecs IS NOT NULL
             ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(username, srtp, number_rules, codecs)| AccountCallSettings {
                    username,
                    srtp: srtp.as_deref().and_then(SrtpPolicy::parse),
                    number_rules,
                    codecs: codecs.as_deref().map(words),
                },
            )
            .collect())
    }

    /// Every account's id by username: the SIP core knows calls by the username their device
    /// registered as, routing rules by the account's id.
    pub async fn sip_account_ids(&self) -> Result<Vec<(String, String)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT username, id FROM sip_accounts ORDER BY username")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    /// The account registering as `username`, with its password opened (for digest).
    pub async fn sip_account_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(SipAccountRecord, Redacted<String>)>, StoreError> {
        let sql = format!("SELECT {COLUMNS}, password_sealed FROM sip_accounts WHERE username = ?");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let account = from_row(&row)?;
        let sealed: String = row.try_get("password_sealed")?;
        let password = self.master.open(&password_context(&account.id), &sealed)?;
        let password =
            String::from_utf8(password).map_err(|_| sipx_secrets::SealError::Malformed)?;
        Ok(Some((account, Redacted::new(password))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn new_account(username: &str) -> NewSipAccount {
        NewSipAccount {
            username: username.to_owned(),
            password: Redacted::new("gateway-pass-1".to_owned()),
            allowed_cidrs: vec!["192.0.2.0/24".to_owned()],
            max_bindings: 3,
            enabled: true,
            description: Some("SIM gateway".to_owned()),
            srtp: None,
            dial_request_uri: "number".to_owned(),
            number_rules: "[]".to_owned(),
            codecs: None,
        }
    }

    #[tokio::test]
    async fn accounts_are_isolated_per_application() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let (b, _) = store.create_app("b").await.unwrap();
        let acct = store
            .create_sip_account(&a.id, &new_account("gw1"))
            .await
            .unwrap();

        assert_eq!(
            store.get_sip_account(&a.id, &acct.id).await.unwrap(),
            Some(acct.clone())
        );
        assert_eq!(store.get_sip_account(&b.id, &acct.id).await.unwrap(), None);
        assert_eq!(
            store.sip_account_by_username(&a.id, "gw1").await.unwrap(),
            Some(acct.clone())
        );
        assert_eq!(
            store.sip_account_by_username(&b.id, "gw1").await.unwrap(),
            None
        );
        let page = PageRequest {
            after: None,
            limit: 10,
        };
        assert!(
            store
                .list_sip_accounts(&b.id, &page)
                .await
                .unwrap()
                .items
                .is_empty()
        );
        let upd = SipAccountUpdate {
            max_bindings: Some(9),
            ..Default::default()
        };
        assert_eq!(
            store
                .update_sip_account(&b.id, &acct.id, &upd)
                .await
                .unwrap(),
            None
        );
        assert!(!store.delete_sip_account(&b.id, &acct.id).await.unwrap());
        assert_eq!(
            store
                .get_sip_account(&a.id, &acct.id)
                .await
                .unwrap()
                .unwrap()
                .max_bindings,
            3,
            "B's update must not have touched A's account"
        );
        assert!(store.delete_sip_account(&a.id, &acct.id).await.unwrap());
    }

    #[tokio::test]
    async fn srtp_policy_is_stored_changed_and_cleared() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let mut new = new_account("gw1");
        new.srtp = Some(SrtpPolicy::Required);
        let acct = store.create_sip_account(&a.id, &new).await.unwrap();
        store
            .create_sip_account(&a.id, &new_account("gw2"))
            .await
            .unwrap();
        let stored = store.get_sip_account(&a.id, &acct.id).await.unwrap();
        assert_eq!(stored.unwrap().srtp, Some(SrtpPolicy::Required));
        assert_eq!(
            store.sip_account_call_settings().await.unwrap(),
            vec![AccountCallSettings {
                username: "gw1".to_owned(),
                srtp: Some(SrtpPolicy::Required),
                number_rules: "[]".to_owned(),
                codecs: None,
            }],
            "accounts without a policy or rules of their own are not listed"
        );
        // Another field changed: the policy stays.
        let upd = SipAccountUpdate {
            max_bindings: Some(2),
            ..Default::default()
        };
        let kept = store.update_sip_account(&a.id, &acct.id, &upd).await;
        assert_eq!(kept.unwrap().unwrap().srtp, Some(SrtpPolicy::Required));
        let upd = SipAccountUpdate {
            srtp: Some(Some(SrtpPolicy::Disabled)),
            ..Default::default()
        };
        let changed = store.update_sip_account(&a.id, &acct.id, &upd).await;
        assert_eq!(changed.unwrap().unwrap().srtp, Some(SrtpPolicy::Disabled));
        let upd = SipAccountUpdate {
            srtp: Some(None),
            ..Default::default()
        };
        let cleared = store.update_sip_account(&a.id, &acct.id, &upd).await;
        assert_eq!(cleared.unwrap().unwrap().srtp, None);
        assert!(store.sip_account_call_settings().await.unwrap().is_empty());
        // Number rules alone list an account too, and are kept by other updates.
        let rules = r#"[{"prefix":"0","replace_with":"+49"}]"#;
        let upd = SipAccountUpdate {
            number_rules: Some(rules.to_owned()),
            ..Default::default()
        };
        let ruled = store.update_sip_account(&a.id, &acct.id, &upd).await;
        assert_eq!(ruled.unwrap().unwrap().number_rules, rules);
        let upd = SipAccountUpdate {
            enabled: Some(true),
            ..Default::default()
        };
        store
            .update_sip_account(&a.id, &acct.id, &upd)
            .await
            .unwrap();
        assert_eq!(
            store.sip_account_call_settings().await.unwrap(),
            vec![AccountCallSettings {
                username: "gw1".to_owned(),
                srtp: None,
                number_rules: rules.to_owned(),
                codecs: None,
            }]
        );
        // Codecs of its own: listed, and cleared by Some(None).
        let pcma = Some(vec!["PCMA".to_owned(), "G722".to_owned()]);
        let upd = SipAccountUpdate {
            codecs: Some(pcma.clone()),
            ..Default::default()
        };
        let with = store.update_sip_account(&a.id, &acct.id, &upd).await;
        assert_eq!(with.unwrap().unwrap().codecs, pcma);
        assert_eq!(
            store.sip_account_call_settings().await.unwrap()[0].codecs,
            pcma
        );
        let upd = SipAccountUpdate {
            codecs: Some(None),
            ..Default::default()
        };
        let without = store.update_sip_account(&a.id, &acct.id, &upd).await;
        assert_eq!(without.unwrap().unwrap().codecs, None);
    }

    #[tokio::test]
    async fn usernames_are_unique_and_passwords_sealed() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let acct = store
            .create_sip_account(&a.id, &new_account("gw1"))
            .await
            .unwrap();
        assert!(matches!(
            store.create_sip_account(&a.id, &new_account("gw1")).await,
            Err(StoreError::Conflict("username"))
        ));
        let (found, pw) = store.sip_account_credentials("gw1").await.unwrap().unwrap();
        assert_eq!(found.id, acct.id);
        assert_eq!(
            store.sip_account_ids().await.unwrap(),
            vec![("gw1".to_owned(), acct.id.clone())]
        );
        assert_eq!(pw.expose(), "gateway-pass-1");

        let upd = SipAccountUpdate {
            password: Some(Redacted::new("new-pass-22".to_owned())),
            description: Some(None),
            allowed_cidrs: Some(vec![]),
            ..Default::default()
        };
        let updated = store
            .update_sip_account(&a.id, &acct.id, &upd)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(updated.description, None);
        assert!(updated.allowed_cidrs.is_empty());
        let (_, pw) = store.sip_account_credentials("gw1").await.unwrap().unwrap();
        assert_eq!(pw.expose(), "new-pass-22");
    }
}
