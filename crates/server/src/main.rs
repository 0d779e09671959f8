//! The `wamage` command line.

use std::{io::BufRead, path::PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use wamage_server::{
    app::{self, BuildOptions},
    config::{Config, Overrides},
    run,
};

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
