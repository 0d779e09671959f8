//! A fresh database per test, on every backend.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL: a new schema in the database named by
//! `WAMAGE_TEST_POSTGRES_URL` (CI always sets it); without that variable the PostgreSQL variant of
//! a test returns early and says it was skipped. [`backend_tests!`](crate::backend_tests) generates
//! one test per backend from a single async test function, which is how every store suite becomes a
//! conformance suite.

use uuid::Uuid;

use crate::db::{Db, DbOptions, MigrationSet};

pub const POSTGRES_URL_VAR: &str = "WAMAGE_TEST_POSTGRES_URL";
pub const REDIS_URL_VAR: &str = "WAMAGE_TEST_REDIS_URL";

/// A migrated, empty database that lives as long as this value.
pub struct TestDb {
    pub db: Db,
    pub url: String,
    pub pg_schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite(migrations: &[MigrationSet]) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let db = Db::connect(&url, &DbOptions::default())
            .await
            .expect("open sqlite test database");
        db.migrate(migrations).await.expect("migrate sqlite");
        Self {
            db,
            url,
            pg_schema: None,
            _dir: Some(dir),
        }
    }

    /// `None` when no PostgreSQL is configured for tests.
    pub async fn postgres(migrations: &[MigrationSet]) -> Option<Self> {
        let url = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|u| !u.is_empty())?;
        let schema = format!("t_{}", Uuid::now_v7().simple());
        let admin = Db::connect(
            &url,
            &DbOptions {
                max_connections: 1,
                ..DbOptions::default()
            },
        )
        .await
        .unwrap_or_else(|e| {
            panic!("{POSTGRES_URL_VAR} is set but PostgreSQL is unreachable: {e:#}")
        });
        if let Db::Postgres(pool) = &admin {
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(pool)
                .await
                .expect("create test schema");
        }
        admin.close().await;
        let db = Db::connect(
            &url,
            &DbOptions {
                max_connections: 8,
                pg_schema: Some(schema.clone()),
                ..DbOptions::default()
            },
        )
        .await
        .expect("connect to test schema");
        db.migrate(migrations).await.expect("migrate postgres");
        Some(Self {
            db,
            url,
            pg_schema: Some(schema),
            _dir: None,
        })
    }
}

/// Redis URL for tests, when configured.
pub fn redis_url() -> Option<String> {
    std::env::var(REDIS_URL_VAR).ok().filter(|u| !u.is_empty())
}

/// Generates, for each listed `async fn name(db: TestDb)`, a test per backend:
/// `sqlite::name` and `postgres::name`.
///
/// ```ignore
/// backend_tests!([wamage_platform::migrations()]; enqueue_then_claim, retries_follow_policy);
/// ```
#[macro_export]
macro_rules! backend_tests {
    ([$($mig:expr),* $(,)?]; $($name:ident),+ $(,)?) => {
        /// The migration sets every generated test starts from.
        fn __backend_test_migrations() -> Vec<$crate::db::MigrationSet> {
            vec![$($mig),*]
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::testing::TestDb::sqlite(&super::__backend_test_migrations()).await;
                    super::$name(db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::testing::TestDb::postgres(&super::__backend_test_migrations()).await else {
                        eprintln!("skipped: {} is not set", $crate::testing::POSTGRES_URL_VAR);
                        return;
                    };
                    super::$name(db).await;
                }
            )+
        }
    };
}
