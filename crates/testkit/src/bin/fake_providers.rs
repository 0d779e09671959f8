//! `fake-providers`: the fake WhatsApp Cloud API and Telegram Bot API of the testkit as one
//! standalone process, for tests that cannot host them in-process (Playwright browser tests, the
//! benchmark that kills worker processes).
//!
//! ```text
//! fake-providers [--meta-listen ADDR] [--telegram-listen ADDR]
//! ```
//!
//! Addresses default to `127.0.0.1:18490` and `127.0.0.1:18491`, or come from
//! `WAMAGE_FAKE_META_LISTEN` / `WAMAGE_FAKE_TELEGRAM_LISTEN`; flags win. Once both listen, one
//! line `ready meta=http://… telegram=http://…` goes to stdout; the process then serves until
//! it gets SIGINT or SIGTERM. The Meta fake is configured over HTTP with its `/_fake/…` control
//! API (see `wamage_testkit::fakes::meta`); tokens are the fakes' `TOKEN` constants.

use std::{io::Write as _, net::SocketAddr, process::ExitCode};

use wamage_testkit::fakes::{FakeMeta, FakeTelegram};

const USAGE: &str = "usage: fake-providers [--meta-listen ADDR] [--telegram-listen ADDR]";

#[derive(Debug, PartialEq, Eq)]
struct Args {
    meta: SocketAddr,
    telegram: SocketAddr,
}

impl Args {
    /// Flags over environment over defaults.
    fn parse(
        mut args: impl Iterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let addr = |what: &str, raw: &str| {
            raw.parse::<SocketAddr>().map_err(|e| {
                format!("{what}: {raw:?} is not an address like 127.0.0.1:18490 ({e})")
            })
        };
        let mut meta = env("WAMAGE_FAKE_META_LISTEN").unwrap_or_else(|| "127.0.0.1:18490".into());
        let mut telegram =
            env("WAMAGE_FAKE_TELEGRAM_LISTEN").unwrap_or_else(|| "127.0.0.1:18491".into());
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                None => (arg, None),
            };
            let slot = match flag.as_str() {
                "--meta-listen" => &mut meta,
                "--telegram-listen" => &mut telegram,
                "-h" | "--help" => return Err(String::new()),
                other => return Err(format!("unknown argument {other:?}")),
            };
            *slot = match inline.or_else(|| args.next()) {
                Some(v) => v,
                None => return Err(format!("{flag} needs an address")),
            };
        }
        Ok(Self {
            meta: addr("--meta-listen", &meta)?,
            telegram: addr("--telegram-listen", &telegram)?,
        })
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match Args::parse(std::env::args().skip(1), |k| std::env::var(k).ok()) {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("fake-providers: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let meta = match FakeMeta::start_on(args.meta).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!(
                "fake-providers: cannot listen on {} for Meta: {e}",
                args.meta
            );
            return ExitCode::FAILURE;
        }
    };
    let telegram = match FakeTelegram::start_on(args.telegram).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "fake-providers: cannot listen on {} for Telegram: {e}",
                args.telegram
            );
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let ready = writeln!(
        out,
        "ready meta={} telegram={}",
        meta.base_url(),
        telegram.base_url()
    )
    .and_then(|()| out.flush());
    drop(out);
    if let Err(e) = ready {
        eprintln!("fake-providers: cannot write to stdout: {e}");
        return ExitCode::FAILURE;
    }
    shutdown_signal().await;
    ExitCode::SUCCESS
}

/// SIGINT, or SIGTERM where there is one.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(args: &[&str], env: &[(&str, &str)]) -> Result<Args, String> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Args::parse(args.iter().map(|a| (*a).to_owned()), |k| {
            env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn flags_win_over_environment_over_defaults() {
        let a = parse(&[], &[]).unwrap();
        assert_eq!(a.meta.to_string(), "127.0.0.1:18490");
        assert_eq!(a.telegram.to_string(), "127.0.0.1:18491");
        let a = parse(
            &[
                "--meta-listen",
                "127.0.0.1:1",
                "--telegram-listen=0.0.0.0:2",
            ],
            &[("WAMAGE_FAKE_META_LISTEN", "127.0.0.1:9")],
        )
        .unwrap();
        assert_eq!(a.meta.to_string(), "127.0.0.1:1");
        assert_eq!(a.telegram.to_string(), "0.0.0.0:2");
        let a = parse(&[], &[("WAMAGE_FAKE_TELEGRAM_LISTEN", "127.0.0.1:7")]).unwrap();
        assert_eq!(a.telegram.to_string(), "127.0.0.1:7");
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(
            parse(&["--meta-listen"], &[])
                .unwrap_err()
                .contains("needs")
        );
        assert!(
            parse(&["--meta-listen", "nope"], &[])
                .unwrap_err()
                .contains("not an address")
        );
        assert!(parse(&["--verbose"], &[]).unwrap_err().contains("unknown"));
    }
}
