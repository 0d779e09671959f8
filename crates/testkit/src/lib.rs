//! Test harness: the real Wamage application, started in-process on `127.0.0.1:0` with a fresh
//! database per test, driven over HTTP with a small typed client.
//!
//! - [`TestApp::sqlite`] always works; [`TestApp::postgres`] uses `WAMAGE_TEST_POSTGRES_URL` (a new
//!   schema per test) and, when `WAMAGE_TEST_REDIS_URL` is set, Redis as the cache (a new key
//!   namespace per test) — the scale-out configuration.
//! - [`app_tests!`] turns one `async fn(TestApp)` into a test per backend.
//! - [`socket`] is a small Socket.IO client for the gateway at `/socket.io`
//!   ([`TestApp::socket`]).
//! - [`tenancy`] checks that another organisation's caller gets 404 for every probe.
//! - The clock is manual ([`TestApp::clock`]), mail is captured ([`TestApp::mailer`]) and jobs run
//!   when the test says so ([`TestApp::run_jobs`]): no sleeps.
//! - [`fakes`] are the messaging providers (WhatsApp Cloud API, Telegram Bot API) as real HTTP
//!   servers that check request shapes and can be told to fail, throttle or hang; the
//!   `fake-providers` binary serves them to other processes (browser tests, benchmarks).
//!
//! Everything but [`fakes`] needs the default `app` feature; crates below the server (channels)
//! depend on this crate with `default-features = false` and get only the fakes.

pub mod fakes;
#[cfg(feature = "app")]
pub mod socket;
#[cfg(feature = "app")]
pub mod tenancy;

#[cfg(feature = "app")]
use std::{net::SocketAddr, sync::Arc};

#[cfg(feature = "app")]
use reqwest::{Method, RequestBuilder, Response, StatusCode};
#[cfg(feature = "app")]
use serde_json::{Value, json};
#[cfg(feature = "app")]
use tokio_util::sync::CancellationToken;
#[cfg(feature = "app")]
use wamage_identity::HashCost;
#[cfg(feature = "app")]
use wamage_kernel::{Clock, Timestamp};
#[cfg(feature = "app")]
use wamage_platform::{
    cache::{RedisCache, SharedCache},
    jobs::Worker,
    mail::LogMailer,
    testing::{TestDb, redis_url},
};
#[cfg(feature = "app")]
use wamage_server::{
    app::{self, AppState, BuildOptions},
    config::{Config, Secret},
};

#[cfg(feature = "app")]
/// A running app for one test. Dropping it stops the server.
pub struct TestApp {
    pub base: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: AppState,
    pub mailer: LogMailer,
    pub clock: Clock,
    worker: Worker,
    shutdown: CancellationToken,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

#[cfg(feature = "app")]
impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        // Close the database pool now. Its connections would otherwise stay open until the
        // test process exits (services and the job handlers registered with them hold each
        // other), and a suite of PostgreSQL tests would run out of server connections.
        if let Ok(handle) = tokio::runtime::Handle::try_current()
            && handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            let db = self.state.db.clone();
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let _ =
                        tokio::time::timeout(std::time::Duration::from_secs(2), db.close()).await;
                });
            });
        }
    }
}

#[cfg(feature = "app")]
/// A signed-in user of a test.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub email: String,
    pub password: String,
    pub access_token: String,
    pub refresh_token: String,
    pub user_id: String,
    pub org_id: String,
    pub role: String,
}

#[cfg(feature = "app")]
impl TestUser {
    fn from_auth(email: &str, password: &str, body: &Value) -> Self {
        let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Self {
            email: email.to_owned(),
            password: password.to_owned(),
            access_token: s(&body["access_token"]),
            refresh_token: s(&body["refresh_token"]),
            user_id: s(&body["user"]["id"]),
            org_id: s(&body["organization"]["id"]),
            role: s(&body["role"]),
        }
    }
}

#[cfg(feature = "app")]
pub const PASSWORD: &str = "correct horse battery";

#[cfg(feature = "app")]
impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    /// An app on SQLite with its configuration changed by `tweak` first.
    pub async fn sqlite_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::sqlite(&app::all_migrations()).await;
        Self::start(db, None, tweak).await
    }

    /// `None` when `WAMAGE_TEST_POSTGRES_URL` is not set.
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(|_| {}).await
    }

    /// [`Self::postgres`] with the configuration changed by `tweak` first.
    pub async fn postgres_with(tweak: impl FnOnce(&mut Config)) -> Option<Self> {
        let db = TestDb::postgres(&app::all_migrations()).await?;
        let cache: Option<SharedCache> = match redis_url() {
            Some(url) => {
                let ns = format!("wamage-test:{}:", uuid::Uuid::now_v7().simple());
                Some(Arc::new(
                    RedisCache::connect(&url, &ns).await.unwrap_or_else(|e| {
                        panic!("WAMAGE_TEST_REDIS_URL is set but Redis is unreachable: {e:#}")
                    }),
                ))
            }
            None => None,
        };
        Some(Self::start(db, cache, tweak).await)
    }

    async fn start(
        db: TestDb,
        cache: Option<SharedCache>,
        tweak: impl FnOnce(&mut Config),
    ) -> Self {
        // Server logs show up in a failing test's output (RUST_LOG overrides the level).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .try_init();
        let dir = tempfile::tempdir().expect("temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind test listener");
        let addr = listener.local_addr().expect("local addr");
        let mut config = Config {
            listen: addr.to_string(),
            data_dir: dir.path().to_path_buf(),
            secret_key: Some(Secret::new(
                "test-secret-key-that-is-long-enough-0123456789",
            )),
            // Small import batches, one per job run, so a 1,000-row file shows progress
            // between runs (tests of longer runs set `import_run_secs`).
            import_batch_rows: 500,
            import_run_secs: 0,
            // Channels in tests talk to the fake providers of `fakes`.
            allow_channel_base_url: true,
            // Interrupted campaign sends settle within a test's patience (its clock is manual).
            campaign_confirm_secs: 20,
            campaign_lease_secs: 20,
            ..Config::default()
        };
        tweak(&mut config);
        let mailer = LogMailer::new();
        let clock = Clock::manual(Timestamp::from_millis(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        ));
        let state = app::build_state(
            config,
            BuildOptions {
                db: Some(db.db.clone()),
                cache,
                clock: Some(clock.clone()),
                mailer: Some(Arc::new(mailer.clone())),
                hash_cost: Some(HashCost::fast_for_tests()),
            },
        )
        .await
        .expect("build app state");
        let router = app::router(&state);
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let _ = axum_serve(listener, router, token).await;
        });
        let worker = app::worker(&state);
        Self {
            base: format!("http://{addr}"),
            addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A server that refuses a body mid-upload closes the connection; never reuse one.
                .pool_max_idle_per_host(0)
                .build()
                .expect("http client"),
            state,
            mailer,
            clock,
            worker,
            shutdown,
            _db: db,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request without credentials.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("user-agent", "wamage-testkit")
    }

    /// A request as `user`.
    pub fn request_as(&self, user: &TestUser, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path).bearer_auth(&user.access_token)
    }

    pub async fn get_as(&self, user: &TestUser, path: &str) -> Response {
        self.request_as(user, Method::GET, path)
            .send()
            .await
            .expect("request")
    }

    /// A GET with a raw bearer credential (an access token or an API key).
    pub async fn get_with_token(&self, token: &str, path: &str) -> Response {
        self.request(Method::GET, path)
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_as(&self, user: &TestUser, path: &str, body: &Value) -> Response {
        self.request_as(user, Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn patch_as(&self, user: &TestUser, path: &str, body: &Value) -> Response {
        self.request_as(user, Method::PATCH, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put_as(&self, user: &TestUser, path: &str) -> Response {
        self.request_as(user, Method::PUT, path)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete_as(&self, user: &TestUser, path: &str) -> Response {
        self.request_as(user, Method::DELETE, path)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Registers a new account with its own organisation.
    pub async fn register(&self, email: &str, organization: &str) -> TestUser {
        let res = self
            .post_json(
                "/api/v1/auth/register",
                &json!({"email": email, "password": PASSWORD, "name": name_of(email), "organization": organization}),
            )
            .await;
        let body = expect_json(res, StatusCode::CREATED).await;
        TestUser::from_auth(email, PASSWORD, &body)
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Invites `email` as `role` into `by`'s organisation and accepts it: a new member, signed in.
    pub async fn add_member(&self, by: &TestUser, email: &str, role: &str) -> TestUser {
        let inv = expect_json(
            self.post_as(
                by,
                "/api/v1/invitations",
                &json!({"email": email, "role": role}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let url = inv["invite_url"].as_str().expect("invite_url");
        let token = url.rsplit('/').next().expect("token");
        let body = expect_json(
            self.post_json(
                &format!("/api/v1/auth/invitations/{token}/accept"),
                &json!({"name": name_of(email), "password": PASSWORD}),
            )
            .await,
            StatusCode::OK,
        )
        .await;
        TestUser::from_auth(email, PASSWORD, &body)
    }

    /// A Socket.IO connection authenticated as `user`; panics when it is refused.
    pub async fn socket(&self, user: &TestUser) -> socket::TestSocket {
        socket::TestSocket::with_token(&self.base, &user.access_token)
            .await
            .unwrap_or_else(|e| panic!("socket.io connection as {} failed: {e:?}", user.email))
    }

    /// Runs every due background job once (after the webhook intake has queued the jobs of
    /// every webhook answered so far); returns how many ran.
    pub async fn run_jobs(&self) -> usize {
        self.state.channels.intake_settled().await;
        self.worker.run_due_jobs().await.expect("run due jobs")
    }
}

#[cfg(feature = "app")]
fn name_of(email: &str) -> String {
    email.split('@').next().unwrap_or("someone").to_owned()
}

#[cfg(feature = "app")]
async fn axum_serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    token: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { token.cancelled().await })
    .await
}

#[cfg(feature = "app")]
/// Asserts the status and returns the JSON body.
pub async fn expect_json(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("body is not JSON: {text}"))
    }
}

#[cfg(feature = "app")]
/// Asserts a problem+json answer with this status and code; returns the body.
pub async fn expect_problem(res: Response, status: StatusCode, code: &str) -> Value {
    let got = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert!(
        ct.starts_with("application/problem+json"),
        "content type {ct}, body: {text}"
    );
    let body: Value = serde_json::from_str(&text).expect("problem body is JSON");
    assert_eq!(body["code"], code, "problem: {body}");
    assert_eq!(body["status"], status.as_u16());
    body
}

#[cfg(feature = "app")]
/// The field names listed in a validation problem.
pub fn problem_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(feature = "app")]
/// One async test function run against every backend: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! app_tests {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::TestApp::sqlite().await).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::TestApp::postgres().await else {
                        eprintln!("skipped: WAMAGE_TEST_POSTGRES_URL is not set");
                        return;
                    };
                    super::$name(app).await;
                }
            )+
        }
    };
}

#[cfg(feature = "app")]
/// Like [`app_tests!`] for tests that need a configuration of their own: `module::sqlite::name`
/// and `module::postgres::name`, each on an app whose config `tweak` (a closure on `&mut Config`)
/// changed.
#[macro_export]
macro_rules! app_tests_with {
    ($module:ident, $tweak:expr, $($name:ident),+ $(,)?) => {
        mod $module {
            mod sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        super::super::$name($crate::TestApp::sqlite_with($tweak).await).await;
                    }
                )+
            }
            mod postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $name() {
                        let Some(app) = $crate::TestApp::postgres_with($tweak).await else {
                            eprintln!("skipped: WAMAGE_TEST_POSTGRES_URL is not set");
                            return;
                        };
                        super::super::$name(app).await;
                    }
                )+
            }
        }
    };
}
