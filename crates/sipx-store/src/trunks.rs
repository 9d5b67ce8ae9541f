//! SIP trunks, per application. Passwords are sealed like every other secret.

use sipx_secrets::Redacted;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::time::now_ms;

use crate::{Page, PageRequest, SrtpPolicy, Store, StoreError, words};

/// Everything about a trunk except its secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkData {
    pub name: String,
    pub enabled: bool,
    /// Outbound: the provider. `None` for an inbound-only trunk.
    pub host: Option<String>,
    pub port: Option<u16>,
    /// `udp`, `tcp` or `tls`.
    pub transport: String,
    pub username: Option<String>,
    pub auth_username: Option<String>,
    pub from_domain: Option<String>,
    pub register: bool,
    pub register_expires: u32,
    pub caller_id: Option<String>,
    /// JSON array of rewrite rules, validated by the API.
    pub number_rules: String,
    pub max_concurrent_calls: Option<u32>,
    pub inbound_cidrs: Vec<String>,
    pub inbound_username: Option<String>,
    pub inbound_numbers: Vec<String>,
    /// JSON array of rewrite rules for the numbers of calls in, validated by the API.
    pub inbound_number_rules: String,
    /// SRTP policy of calls through the trunk, either way; `None`: the server's.
    pub srtp: Option<SrtpPolicy>,
    /// Codec names in order of preference, validated by the API; `None`: the server's.
    pub codecs: Option<Vec<String>>,
}

impl TrunkData {
    /// An enabled trunk with nothing else set: no provider (inbound only), no inbound
    /// network or user yet, the server's SRTP policy.
    pub fn new(name: impl Into<String>) -> Self {
        TrunkData {
            name: name.into(),
            enabled: true,
            host: None,
            port: None,
            transport: "udp".to_owned(),
            username: None,
            auth_username: None,
            from_domain: None,
            register: false,
            register_expires: 3600,
            caller_id: None,
            number_rules: "[]".to_owned(),
            max_concurrent_calls: None,
            inbound_cidrs: Vec::new(),
            inbound_username: None,
            inbound_numbers: Vec::new(),
            inbound_number_rules: "[]".to_owned(),
            srtp: None,
            codecs: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrunkRecord {
    pub id: String,
    pub app_id: String,
    pub data: TrunkData,
    pub has_password: bool,
    pub has_inbound_password: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What to do with a stored secret on write.
#[derive(Debug, Clone)]
pub enum SecretChange {
    Keep,
    Clear,
    Set(Redacted<String>),
}

/// A trunk with its secrets opened, for the SIP service.
#[derive(Debug, Clone)]
pub struct TrunkWithSecrets {
    pub trunk: TrunkRecord,
    pub password: Option<Redacted<String>>,
    pub inbound_password: Option<Redacted<String>>,
}

const COLUMNS: &str = "id, app_id, name, enabled, host, port, transport, username, auth_username, \
    password_sealed, from_domain, register, register_expires, caller_id, number_rules, \
    max_concurrent_calls, inbound_cidrs, inbound_username, inbound_password_sealed, \
    inbound_numbers, inbound_number_rules, srtp, codecs, created_at_ms, updated_at_ms";

fn from_row(row: &SqliteRow) -> Result<TrunkRecord, sqlx::Error> {
    let port: Option<i64> = row.try_get("port")?;
    let expires: i64 = row.try_get("register_expires")?;
    let max_calls: Option<i64> = row.try_get("max_concurrent_calls")?;
    let cidrs: String = row.try_get("inbound_cidrs")?;
    let numbers: String = row.try_get("inbound_numbers")?;
    let password: Option<String> = row.try_get("password_sealed")?;
    let inbound_password: Option<String> = row.try_get("inbound_password_sealed")?;
    let codecs: Option<String> = row.try_get("codecs")?;
    Ok(TrunkRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        data: TrunkData {
            name: row.try_get("name")?,
            enabled: row.try_get("enabled")?,
            host: row.try_get("host")?,
            port: port.and_then(|p| u16::try_from(p).ok()),
            transport: row.try_get("transport")?,
            username: row.try_get("username")?,
            auth_username: row.try_get("auth_username")?,
            from_domain: row.try_get("from_domain")?,
            register: row.try_get("register")?,
            register_expires: u32::try_from(expires).unwrap_or(3600),
            caller_id: row.try_get("caller_id")?,
            number_rules: row.try_get("number_rules")?,
            max_concurrent_calls: max_calls.and_then(|m| u32::try_from(m).ok()),
            inbound_cidrs: words(&cidrs),
            inbound_username: row.try_get("inbound_username")?,
            inbound_numbers: words(&numbers),
            inbound_number_rules: row.try_get("inbound_number_rules")?,
            srtp: crate::srtp::from_column(row.try_get("srtp")?),
            codecs: codecs.as_deref().map(words),
        },
        has_password: password.is_some(),
        has_inbound_password: inbound_password.is_some(),
        created_at_ms: row.try_get("created_at_ms")?,
        updated_at_ms: row.try_get("updated_at_ms")?,
    })
}

type SqliteQuery<'q> =
    sqlx::query::Query<'q, sqlx::Sqlite, <sqlx::Sqlite as sqlx::Database>::Arguments>;

/// Binds a trunk's fields, in the column order both the INSERT and the UPDATE list them.
fn bind_fields<'q>(
    q: SqliteQuery<'q>,
    data: &'q TrunkData,
    sealed: Option<String>,
    sealed_in: Option<String>,
) -> SqliteQuery<'q> {
    q.bind(&data.name)
        .bind(data.enabled)
        .bind(data.host.as_deref())
        .bind(data.port.map(i64::from))
        .bind(&data.transport)
        .bind(data.username.as_deref())
        .bind(data.auth_username.as_deref())
        .bind(sealed)
        .bind(data.from_domain.as_deref())
        .bind(data.register)
        .bind(i64::from(data.register_expires))
        .bind(data.caller_id.as_deref())
        .bind(&data.number_rules)
        .bind(data.max_concurrent_calls.map(i64::from))
        .bind(data.inbound_cidrs.join(" "))
        .bind(data.inbound_username.as_deref())
        .bind(sealed_in)
        .bind(data.inbound_numbers.join(" "))
        .bind(&data.inbound_number_rules)
        .bind(data.srtp.map(SrtpPolicy::as_str))
        .bind(data.codecs.as_ref().map(|c| c.join(" ")))
}

fn context(kind: &str, id: &str) -> String {
    format!("trunk-{kind}:{id}")
}

impl Store {
    fn seal_change(
        &self,
        kind: &str,
        id: &str,
        change: &SecretChange,
        old: Option<String>,
    ) -> Option<String> {
        match change {
            SecretChange::Keep => old,
            SecretChange::Clear => None,
            SecretChange::Set(p) => {
                Some(self.master.seal(&context(kind, id), p.expose().as_bytes()))
            }
        }
    }

    pub async fn create_trunk(
        &self,
        app_id: &str,
        data: &TrunkData,
        password: &SecretChange,
        inbound_password: &SecretChange,
    ) -> Result<TrunkRecord, StoreError> {
        let id = format!("trunk_{}", ulid::Ulid::new().to_string().to_lowercase());
        let now = now_ms();
        let sealed = self.seal_change("password", &id, password, None);
        let sealed_in = self.seal_change("inbound", &id, inbound_password, None);
        let insert = sqlx::query(
            "INSERT INTO trunks (id, app_id, name, enabled, host, port, transport, username,
             auth_username, password_sealed, from_domain, register, register_expires, caller_id,
             number_rules, max_concurrent_calls, inbound_cidrs, inbound_username,
             inbound_password_sealed, inbound_numbers, inbound_number_rules, srtp, codecs,
             created_at_ms, updated_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&id)
        .bind(app_id);
        bind_fields(insert, data, sealed, sealed_in)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        self.changed().await;
        self.get_trunk(app_id, &id)
            .await?
            .ok_or(StoreError::Conflict("trunk"))
    }

    pub async fn update_trunk(
        &self,
        app_id: &str,
        id: &str,
        data: &TrunkData,
        password: &SecretChange,
        inbound_password: &SecretChange,
    ) -> Result<Option<TrunkRecord>, StoreError> {
        let old: Option<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT password_sealed, inbound_password_sealed FROM trunks WHERE app_id = ? AND id = ?",
        )
        .bind(app_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((old_pw, old_in)) = old else {
            return Ok(None);
        };
        let sealed = self.seal_change("password", id, password, old_pw);
        let sealed_in = self.seal_change("inbound", id, inbound_password, old_in);
        let update = sqlx::query(
            "UPDATE trunks SET name = ?, enabled = ?, host = ?, port = ?, transport = ?,
             username = ?, auth_username = ?, password_sealed = ?, from_domain = ?, register = ?,
             register_expires = ?, caller_id = ?, number_rules = ?, max_concurrent_calls = ?,
             inbound_cidrs = ?, inbound_username = ?, inbound_password_sealed = ?,
             inbound_numbers = ?, inbound_number_rules = ?, srtp = ?, codecs = ?, updated_at_ms = ? WHERE app_id = ? AND id = ?",
        );
        bind_fields(update, data, sealed, sealed_in)
            .bind(now_ms())
            .bind(app_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed().await;
        self.get_trunk(app_id, id).await
    }

    pub async fn get_trunk(
        &self,
        app_id: &str,
        id: &str,
    ) -> Result<Option<TrunkRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM trunks WHERE app_id = ? AND id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_trunks(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Page<TrunkRecord>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM trunks WHERE app_id = ? AND id > ? ORDER BY id LIMIT ?");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_rows(rows, page.limit, |t| t.id.clone()))
    }

    pub async fn delete_trunk(&self, app_id: &str, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM trunks WHERE app_id = ? AND id = ?")
            .bind(app_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.changed().await;
        Ok(done.rows_affected() > 0)
    }

    /// Every enabled trunk of every enabled application, secrets opened: the SIP service's view.
    pub async fn trunks_for_sip(&self) -> Result<Vec<TrunkWithSecrets>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM trunks WHERE enabled = 1 AND app_id IN
             (SELECT id FROM apps WHERE disabled = 0) ORDER BY id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        self.with_secrets(&rows)
    }

    /// One application's enabled trunks with their passwords opened, by name: the routes a
    /// dial-out may take.
    pub async fn app_trunks_with_secrets(
        &self,
        app_id: &str,
    ) -> Result<Vec<TrunkWithSecrets>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM trunks WHERE enabled = 1 AND app_id = ? ORDER BY name, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(app_id)
            .fetch_all(&self.pool)
            .await?;
        self.with_secrets(&rows)
    }

    fn with_secrets(&self, rows: &[SqliteRow]) -> Result<Vec<TrunkWithSecrets>, StoreError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let trunk = from_row(row)?;
            let open = |kind: &str, col: &str| -> Result<Option<Redacted<String>>, StoreError> {
                let sealed: Option<String> = row.try_get(col)?;
                sealed
                    .map(|s| {
                        let plain = self.master.open(&context(kind, &trunk.id), &s)?;
                        Ok(Redacted::new(String::from_utf8_lossy(&plain).into_owned()))
                    })
                    .transpose()
            };
            let password = open("password", "password_sealed")?;
            let inbound_password = open("inbound", "inbound_password_sealed")?;
            out.push(TrunkWithSecrets {
                trunk,
                password,
                inbound_password,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::temp_store;

    fn data(name: &str) -> TrunkData {
        TrunkData {
            name: name.into(),
            enabled: true,
            host: Some("sip.provider.example".into()),
            port: Some(5060),
            transport: "udp".into(),
            username: Some("acct".into()),
            auth_username: None,
            from_domain: None,
            register: true,
            register_expires: 600,
            caller_id: Some("+4930123456".into()),
            number_rules: "[]".into(),
            max_concurrent_calls: Some(4),
            inbound_cidrs: vec!["192.0.2.0/24".into()],
            inbound_username: None,
            inbound_numbers: vec!["+4930123456".into()],
            inbound_number_rules: r#"[{"prefix":"0","replace_with":"+49"}]"#.into(),
            srtp: Some(SrtpPolicy::Required),
            codecs: Some(vec!["PCMA".into(), "opus".into()]),
        }
    }

    #[tokio::test]
    async fn trunks_round_trip_with_sealed_passwords_and_isolation() {
        let (store, _dir) = temp_store().await;
        let (a, _) = store.create_app("a").await.unwrap();
        let (b, _) = store.create_app("b").await.unwrap();
        let changes = store.subscribe_changes();
        let t = store
            .create_trunk(
                &a.id,
                &data("p1"),
                &SecretChange::Set(Redacted::new("s3cret".into())),
                &SecretChange::Keep,
            )
            .await
            .unwrap();
        assert!(changes.has_changed().unwrap());
        assert!(t.has_password && !t.has_inbound_password);
        assert_eq!(t.data, data("p1"));
        assert!(store.get_trunk(&b.id, &t.id).await.unwrap().is_none());
        let all = store.trunks_for_sip().await.unwrap();
        assert_eq!(all[0].password.as_ref().unwrap().expose(), "s3cret");
        let mut d = data("p2");
        d.register = false;
        d.srtp = None;
        d.inbound_number_rules = "[]".into();
        d.codecs = None;
        let u = store
            .update_trunk(
                &a.id,
                &t.id,
                &d,
                &SecretChange::Keep,
                &SecretChange::Set(Redacted::new("in".into())),
            )
            .await
            .unwrap()
            .unwrap();
        assert!(u.has_password && u.has_inbound_password && !u.data.register);
        assert_eq!(u.data.srtp, None, "the policy is cleared with the update");
        assert_eq!(u.data, d, "every field is written by the update");
        assert!(
            store
                .update_trunk(&b.id, &t.id, &d, &SecretChange::Keep, &SecretChange::Keep)
                .await
                .unwrap()
                .is_none()
        );
        assert!(!store.delete_trunk(&b.id, &t.id).await.unwrap());
        assert!(store.delete_trunk(&a.id, &t.id).await.unwrap());
    }
}
