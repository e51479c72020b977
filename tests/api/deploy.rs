//! What can be checked here of the container and deployment files (Docker cannot run on this
//! machine), and the example clients run against the real service.
//!
//! - The Dockerfile's `ENTRYPOINT` + `CMD`, with its `ENV`, start this very binary as a
//!   serving front, and its `HEALTHCHECK` command passes against it and fails once it stops.
//! - Every command the compose file and the Kubernetes manifests give the image is a
//!   subcommand the binary has.
//! - `examples/export.sh`, `export.py` and `export.mjs` each download an export that equals
//!   the sync endpoint's file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{TestApp, free_port, gunzip};

const BIN: &str = env!("CARGO_BIN_EXE_pipeline-export");

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The JSON array of an exec-form Dockerfile instruction (`CMD ["serve"]`, or the `CMD` of
/// `HEALTHCHECK --interval=... CMD [...]`).
fn exec_form(dockerfile: &str, instruction: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find_map(|l| l.trim().strip_prefix(instruction)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {instruction} in the Dockerfile"));
    let array = &line[line.find('[').expect("exec form")..];
    serde_json::from_str(array).unwrap_or_else(|e| panic!("{instruction} {array}: {e}"))
}

/// `ENV A=1 B=2` lines.
fn env_of(dockerfile: &str) -> Vec<(String, String)> {
    dockerfile
        .replace("\\\n", " ")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|vars| {
            vars.split_whitespace().map(|pair| {
                let (k, v) = pair.split_once('=').expect("ENV KEY=VALUE");
                (k.to_owned(), v.to_owned())
            })
        })
        .collect()
}

#[tokio::test]
async fn the_images_command_serves_and_its_health_check_passes() {
    let dockerfile = repo_file("Dockerfile");
    let entrypoint = exec_form(&dockerfile, "ENTRYPOINT");
    let cmd = exec_form(&dockerfile, "CMD");
    let health = exec_form(&dockerfile, "HEALTHCHECK");
    assert_eq!(entrypoint, ["pipeline-export"], "the image runs the binary");
    assert_eq!(health[0], "pipeline-export");
    let env = env_of(&dockerfile);
    let bind = &env.iter().find(|(k, _)| k == "BIND_ADDR").unwrap().1;
    assert!(
        bind.starts_with("0.0.0.0:"),
        "listens on every interface: {bind}"
    );
    // The image's settings, on a free port (8080 may be taken here).
    let port = free_port();
    let env: Vec<(String, String)> = env
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "BIND_ADDR" => (k, format!("0.0.0.0:{port}")),
            _ => (k, v),
        })
        .chain([
            ("DATABASE_URL".into(), crate::helpers::database_url().into()),
            ("JWT_SECRET".into(), "image-test-jwt-secret".into()),
            ("LINK_SECRET".into(), crate::helpers::LINK_SECRET.into()),
            (
                "STORAGE_DIR".into(),
                std::env::temp_dir()
                    .join("pe-image-test")
                    .display()
                    .to_string(),
            ),
        ])
        .collect();
    let healthcheck = || {
        Command::new(BIN)
            .args(&health[1..])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("METRICS_ADDR")
            .output()
            .unwrap()
    };

    let mut server = Command::new(BIN)
        .args(&cmd)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env_remove("METRICS_ADDR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = healthcheck();
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("200"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the image's command did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let output = server.wait_with_output_timeout();
    // LOG_FORMAT=json: every log line is a JSON object.
    let first = output.lines().next().expect("the server logged");
    let line: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{first}: {e}"));
    assert!(
        line["fields"]["message"].is_string() || line["message"].is_string(),
        "{line}"
    );

    let down = healthcheck();
    assert_eq!(
        down.status.code(),
        Some(1),
        "unhealthy once the server is gone"
    );
}

trait WaitOutput {
    fn wait_with_output_timeout(&mut self) -> String;
}

impl WaitOutput for std::process::Child {
    /// Waits (at most 30 s, then kills) and returns what it logged (on stderr).
    fn wait_with_output_timeout(&mut self) -> String {
        use std::io::Read;
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = String::new();
        self.stderr
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    }
}

#[test]
fn every_command_the_manifests_run_is_a_subcommand() {
    let mut commands = Vec::new();
    for file in [
        "infra/compose.yml",
        "infra/k8s/front.yaml",
        "infra/k8s/worker.yaml",
        "infra/k8s/migrate-job.yaml",
    ] {
        let text = repo_file(file);
        for line in text.lines() {
            let line = line.trim();
            let Some(array) = line
                .strip_prefix("args: ")
                .or_else(|| line.strip_prefix("command: "))
                .filter(|a| a.starts_with('['))
            else {
                continue;
            };
            let args: Vec<String> = serde_json::from_str(array).unwrap();
            if args[0] == "sleep" {
                continue; // a preStop pause, not the image's command
            }
            commands.push((file, args));
        }
    }
    let names: Vec<&str> = commands.iter().map(|(_, a)| a[0].as_str()).collect();
    for expected in ["serve", "worker", "migrate"] {
        assert!(
            names.contains(&expected),
            "{expected} is deployed: {names:?}"
        );
    }
    for (file, args) in &commands {
        let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
        assert!(out.status.success(), "{file}: {args:?} is not a subcommand");
    }
    // Every variable the manifests set is one the binary reads (or the AWS chain's).
    let help: String = ["serve", "worker", "migrate"]
        .iter()
        .map(|c| {
            String::from_utf8(
                Command::new(BIN)
                    .args([c, "--help"])
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap()
        })
        .collect();
    for file in ["infra/k8s/configmap.yaml", "infra/k8s/secret.yaml"] {
        for line in repo_file(file).lines() {
            let Some((key, _)) = line.trim().split_once(':') else {
                continue;
            };
            let is_var = line.starts_with("  ")
                && !line.starts_with("   ")
                && key.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && !key.is_empty();
            if is_var && !key.starts_with("AWS_") && key != "RUST_LOG" {
                assert!(
                    help.contains(key),
                    "{file}: {key} is not a setting of the binary"
                );
            }
        }
    }
}

#[tokio::test]
async fn the_example_clients_download_an_export() {
    let app = TestApp::spawn_with_workers(|c| c.background.export_max_active_per_user = 10).await;
    let user = app.create_user().await;
    app.insert_jobs(&user, 17).await;
    let sync = app
        .export(&user.token, "format=csv")
        .await
        .bytes()
        .await
        .unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for client in [
        vec!["bash", "export.sh"],
        vec!["python3", "export.py"],
        vec!["node", "export.mjs"],
    ] {
        let out_dir = tempfile::tempdir().unwrap();
        let output = tokio::process::Command::new(client[0])
            .arg(examples.join(client[1]))
            .args(["csv", out_dir.path().to_str().unwrap()])
            .env("PIPELINE_URL", &app.base)
            .env("PIPELINE_TOKEN", &user.token)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{client:?}: {stderr}");
        let saved = String::from_utf8(output.stdout).unwrap();
        let saved = Path::new(saved.trim());
        assert!(
            saved.starts_with(out_dir.path()),
            "{client:?} printed {saved:?}"
        );
        assert!(saved.to_string_lossy().ends_with(".csv.gz"), "{saved:?}");
        let bytes = gunzip(&std::fs::read(saved).unwrap());
        assert_eq!(bytes, sync.to_vec(), "{client:?} saved the user's export");
    }
    // Without a token: a clear error and a failing exit code.
    let output = tokio::process::Command::new("bash")
        .arg(examples.join("export.sh"))
        .env("PIPELINE_URL", &app.base)
        .env_remove("PIPELINE_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PIPELINE_TOKEN"));
}
