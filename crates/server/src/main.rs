//! The `wamage` command line.

use std::{io::BufRead, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use wamage_server::{
    app::{self, BuildOptions},
    config::{Config, Overrides},
    run,
};

/// mimalloc instead of the system allocator: the request and batch paths allocate and free many
/// short-lived buffers across threads, where glibc's allocator showed up at ~30 % of a profile.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "wamage",
    version,
    about = "Self-hosted business messaging and automation"
)]
struct Cli {
    /// Config file (default: ./wamage.toml when present). Env: WAMAGE_CONFIG.
    #[arg(long, global = true, env = "WAMAGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run Wamage (API + web UI, worker, realtime; see --roles).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(CommonArgs),
    /// Administration tasks.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Print the OpenAPI document (JSON) and exit.
    Openapi(CommonArgs),
    /// Play a customer of a Sandbox channel on a running server: send a message as them, or
    /// have them read what they were sent.
    Simulate(SimulateArgs),
    /// Print the version and exit.
    Version,
}

#[derive(Args, Default)]
struct CommonArgs {
    /// Data directory (SQLite file, secret key, uploaded files). Env: WAMAGE_DATA_DIR.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Database URL (sqlite://… or postgres://…). Env: WAMAGE_DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on. Env: WAMAGE_LISTEN.
    #[arg(long)]
    listen: Option<String>,
    /// Roles to run, comma-separated: api, worker, realtime. Env: WAMAGE_ROLES.
    #[arg(long)]
    roles: Option<String>,
}

#[derive(Args)]
struct SimulateArgs {
    /// The running server. Env: WAMAGE_URL.
    #[arg(long, env = "WAMAGE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API key of the organisation (Settings → API keys). Env: WAMAGE_API_KEY.
    #[arg(long, env = "WAMAGE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// The Sandbox channel's id (default: the organisation's first Sandbox channel).
    #[arg(long)]
    channel: Option<String>,
    /// The simulated customer's handle.
    #[arg(long, default_value = "ada")]
    from: String,
    /// The simulated customer's display name.
    #[arg(long)]
    name: Option<String>,
    /// Instead of writing: the customer reads every message of this conversation.
    #[arg(long, value_name = "CONVERSATION_ID", conflicts_with = "text")]
    read: Option<String>,
    /// What the customer writes.
    #[arg(required_unless_present = "read")]
    text: Option<String>,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an account with its own organisation (as owner).
    CreateUser {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        organization: String,
        /// The password; read from standard input when omitted.
        #[arg(long)]
        password: Option<String>,
    },
    /// Set a new password for an account and sign it out everywhere.
    ResetPassword {
        #[command(flatten)]
        common: CommonArgs,
        #[arg(long)]
        email: String,
        /// The new password; read from standard input when omitted.
        #[arg(long)]
        password: Option<String>,
    },
}

fn overrides(common: &CommonArgs) -> Overrides {
    Overrides {
        data_dir: common.data_dir.clone(),
        database_url: common.database_url.clone(),
        ..Overrides::default()
    }
}

fn read_password(given: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("failed to read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn problem_to_error(p: wamage_kernel::Problem) -> anyhow::Error {
    let fields: Vec<String> = p
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    if fields.is_empty() {
        anyhow::anyhow!("{}", p.title)
    } else {
        anyhow::anyhow!("{} ({})", p.title, fields.join("; "))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            println!("wamage {}", env!("CARGO_PKG_VERSION"));
        }
        Command::Serve(args) => {
            let mut o = overrides(&args.common);
            o.listen = args.listen;
            o.roles = args.roles;
            let cfg = Config::load(cli.config.as_deref(), &o)?;
            run::init_logging(&cfg);
            run::serve(cfg).await?;
        }
        Command::Migrate(common) => {
            let cfg = Config::load(cli.config.as_deref(), &overrides(&common))?;
            run::init_logging(&cfg);
            let db = app::connect_db(&cfg).await?;
            db.close().await;
            println!("migrations applied ({})", db.backend().name());
        }
        Command::Openapi(common) => {
            let mut cfg = Config::load(cli.config.as_deref(), &overrides(&common))?;
            // The document does not depend on data: build it on a throwaway database.
            let dir = std::env::temp_dir().join(format!("wamage-openapi-{}", std::process::id()));
            cfg.data_dir = dir.clone();
            cfg.database_url = None;
            let state = app::build_state(cfg, BuildOptions::default()).await?;
            let doc = wamage_server::http::openapi_document(&state);
            state.db.close().await;
            let _ = std::fs::remove_dir_all(&dir);
            println!("{}", doc.to_pretty_json()?);
        }
        Command::Simulate(args) => simulate(args).await?,
        Command::Admin(cmd) => {
            let (common, action) = match &cmd {
                AdminCommand::CreateUser { common, .. }
                | AdminCommand::ResetPassword { common, .. } => (common, &cmd),
            };
            let cfg = Config::load(cli.config.as_deref(), &overrides(common))?;
            run::init_logging(&cfg);
            let state = app::build_state(cfg, BuildOptions::default()).await?;
            match action {
                AdminCommand::CreateUser {
                    email,
                    name,
                    organization,
                    password,
                    ..
                } => {
                    let password = read_password(password.clone())?;
                    let issued = state
                        .identity
                        .admin_create_user(email, &password, name, organization)
                        .await
                        .map_err(problem_to_error)?;
                    println!(
                        "created {} (user {}) as owner of \"{}\" (organization {})",
                        issued.user.email, issued.user.id, issued.org.name, issued.org.id
                    );
                }
                AdminCommand::ResetPassword {
                    email, password, ..
                } => {
                    let password = read_password(password.clone())?;
                    state
                        .identity
                        .admin_reset_password(email, &password)
                        .await
                        .map_err(problem_to_error)?;
                    println!("password reset for {email}; all of its sessions were signed out");
                }
            }
            state.db.close().await;
        }
    }
    Ok(())
}

/// `wamage simulate`: the Sandbox's customer, over the HTTP API of a running server.
async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    let base = a.url.trim_end_matches('/');
    let http = reqwest::Client::new();
    let call = |req: reqwest::RequestBuilder| async {
        let res = req
            .bearer_auth(&a.api_key)
            .send()
            .await
            .with_context(|| format!("cannot reach {base}"))?;
        let status = res.status();
        let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
        if !status.is_success() {
            let detail = body["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .map(|x| {
                            format!(
                                "{}: {}",
                                x["field"].as_str().unwrap_or("?"),
                                x["message"].as_str().unwrap_or("?")
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            anyhow::bail!(
                "{status}: {} {detail}",
                body["title"].as_str().unwrap_or("request failed")
            );
        }
        anyhow::Ok(body)
    };
    let channel = match &a.channel {
        Some(c) => c.clone(),
        None => {
            let list = call(http.get(format!("{base}/api/v1/channels"))).await?;
            list.as_array()
                .and_then(|l| l.iter().find(|c| c["kind"] == "sandbox"))
                .and_then(|c| c["id"].as_str())
                .map(str::to_owned)
                .context(
                    "this organisation has no Sandbox channel: connect one in Settings → Channels",
                )?
        }
    };
    if let Some(conv) = &a.read {
        call(
            http.post(format!("{base}/api/v1/channels/{channel}/simulate/read"))
                .json(&serde_json::json!({ "conversation_id": conv })),
        )
        .await?;
        println!("{} read the conversation {conv}", a.from);
    } else {
        let out = call(
            http.post(format!("{base}/api/v1/channels/{channel}/simulate"))
                .json(&serde_json::json!({
                    "from": { "handle": a.from, "name": a.name },
                    "text": a.text.unwrap_or_default(),
                })),
        )
        .await?;
        println!(
            "{} wrote on channel {channel} (message {})",
            a.from,
            out["provider_message_id"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
