//! bollard, a Docker client library, works unchanged against arcad: every call below is
//! bollard's typed API, and the assertions are on its typed results.

mod common;

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ChangeType, ContainerCreateBody, ContainerStateStatusEnum, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    StatsOptionsBuilder, TopOptionsBuilder, WaitContainerOptionsBuilder,
};
use bollard::{ClientVersion, Docker};
use common::Daemon;
use futures_util::StreamExt;

fn client(d: &Daemon) -> Docker {
    let version = ClientVersion {
        major_version: 1,
        minor_version: 51,
    };
    Docker::connect_with_unix(d.socket.to_str().expect("utf8 socket path"), 60, &version)
        .expect("bollard connects")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn create(docker: &Docker, name: &str, cmd: &[&str], host: HostConfig) -> String {
    let body = ContainerCreateBody {
        image: Some("busybox".into()),
        cmd: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
        host_config: Some(host),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(name).build();
    docker
        .create_container(Some(opts), body)
        .await
        .expect("create_container")
        .id
}

#[test]
fn bollard_runs_waits_and_reads_logs_of_a_container() {
    let d = Daemon::start();
    d.load_busybox();
    runtime().block_on(async {
        let docker = client(&d);
        let id = create(
            &docker,
            "once",
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
            HostConfig::default(),
        )
        .await;
        assert_eq!(id.len(), 64);
        docker.start_container(&id, None).await.expect("start");
        // bollard sends the wait request only when its stream is first polled, i.e. after
        // the start; the container may have exited by then, so wait for "not running"
        // (a "next-exit" wait could miss that exit and wait forever).
        let wait_opts = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut wait = Box::pin(docker.wait_container(&id, Some(wait_opts)));
        // A non-zero exit is an error carrying the code in bollard's API.
        match wait.next().await.expect("wait result") {
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                assert_eq!(code, 7)
            }
            Ok(r) => assert_eq!(r.status_code, 7),
            Err(e) => panic!("wait failed: {e}"),
        }

        let info = docker.inspect_container(&id, None).await.expect("inspect");
        let state = info.state.expect("state");
        assert_eq!(state.status, Some(ContainerStateStatusEnum::EXITED));
        assert_eq!(state.exit_code, Some(7));
        assert_eq!(info.name.as_deref(), Some("/once"));

        let logs_opts = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .build();
        let logs: Vec<LogOutput> = docker
            .logs(&id, Some(logs_opts))
            .map(|r| r.expect("log frame"))
            .collect()
            .await;
        assert!(
            logs.iter().any(
                |l| matches!(l, LogOutput::StdOut { message } if message.as_ref() == b"out\n")
            ),
            "{logs:?}"
        );
        assert!(
            logs.iter().any(
                |l| matches!(l, LogOutput::StdErr { message } if message.as_ref() == b"err\n")
            ),
            "{logs:?}"
        );

        // A stopped container's stats are empty, not an error.
        let once = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let s = docker
            .stats(&id, Some(once))
            .next()
            .await
            .expect("one sample")
            .expect("stats of a stopped container");
        assert_eq!(s.id.as_deref(), Some(id.as_str()));
        assert_eq!(s.memory_stats.and_then(|m| m.usage), None);

        // A stream of a stopped container sends empty samples until it is removed.
        let mut stream = Box::pin(docker.stats(&id, None));
        let s = stream.next().await.expect("sample").expect("stats");
        assert_eq!(s.name.as_deref(), Some("/once"));
        docker.remove_container(&id, None).await.expect("remove");
        let end = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(s) = stream.next().await {
                s.expect("empty sample");
            }
        })
        .await;
        assert!(
            end.is_ok(),
            "the stream must end when the container is removed"
        );
        let gone = docker.inspect_container(&id, None).await;
        assert!(
            matches!(
                gone,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })
            ),
            "{gone:?}"
        );
    });
}

#[test]
fn bollard_observes_a_running_container() {
    let d = Daemon::start();
    d.load_busybox();
    runtime().block_on(async {
        let docker = client(&d);
        let host = HostConfig {
            memory: Some(64 * 1024 * 1024),
            ..Default::default()
        };
        let id = create(
            &docker,
            "obs",
            &["sh", "-c", "touch /new; rm /etc/group; sleep 300"],
            host,
        )
        .await;
        docker.start_container(&id, None).await.expect("start");

        // Changes appear once the shell ran its two commands.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let changes = loop {
            let c = docker
                .container_changes(&id)
                .await
                .expect("changes")
                .unwrap_or_default();
            if c.len() >= 3 || std::time::Instant::now() > deadline {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let has = |p: &str, k: ChangeType| changes.iter().any(|c| c.path == p && c.kind == k);
        assert!(has("/new", ChangeType::_1), "{changes:?}");
        assert!(has("/etc/group", ChangeType::_2), "{changes:?}");
        assert!(has("/etc", ChangeType::_0), "{changes:?}");

        // The shell starts `sleep` right after its `rm`: poll (bounded) until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let (titles, procs) = loop {
            let top = docker
                .top_processes(
                    &id,
                    Some(TopOptionsBuilder::default().ps_args("-ef").build()),
                )
                .await
                .expect("top");
            let titles = top.titles.expect("titles");
            let procs = top.processes.expect("processes");
            let cmd = titles.iter().position(|t| t == "CMD").expect("CMD column");
            if procs.iter().any(|p| p[cmd].starts_with("sleep 300"))
                || std::time::Instant::now() > deadline
            {
                break (titles, procs);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(titles.iter().any(|t| t == "PID"), "{titles:?}");
        let cmd = titles.iter().position(|t| t == "CMD").expect("CMD column");
        assert!(
            procs.iter().any(|p| p[cmd].starts_with("sleep 300")),
            "{procs:?}"
        );

        let once = StatsOptionsBuilder::default()
            .stream(false)
            .one_shot(true)
            .build();
        let s = docker
            .stats(&id, Some(once))
            .next()
            .await
            .expect("one sample")
            .expect("stats");
        assert_eq!(s.name.as_deref(), Some("/obs"));
        let mem = s.memory_stats.expect("memory stats");
        assert!(mem.usage.unwrap_or(0) > 0, "{mem:?}");
        assert_eq!(mem.limit, Some(64 * 1024 * 1024));
        let pids = s.pids_stats.expect("pids stats");
        assert_eq!(pids.current, Some(procs.len() as u64));
        let cpu = s.cpu_stats.expect("cpu stats");
        assert!(cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0) > 0);
        assert!(cpu.system_cpu_usage.unwrap_or(0) > 0);
        assert!(cpu.online_cpus.unwrap_or(0) >= 1);

        // A stream sends a sample a second, each with the previous one as precpu.
        let mut stream = Box::pin(docker.stats(&id, None));
        let first = stream.next().await.expect("first").expect("stats");
        let second = stream.next().await.expect("second").expect("stats");
        drop(stream);
        assert_eq!(
            second.precpu_stats.and_then(|p| p.cpu_usage),
            first.cpu_stats.and_then(|c| c.cpu_usage)
        );
        assert_eq!(second.preread, first.read);

        let exec = docker
            .create_exec(
                &id,
                CreateExecOptions {
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    cmd: Some(vec!["cat", "/etc/hostname"]),
                    ..Default::default()
                },
            )
            .await
            .expect("create_exec");
        let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&exec.id, None).await.expect("start_exec")
        else {
            panic!("exec started detached");
        };
        let mut text = Vec::new();
        while let Some(frame) = output.next().await {
            text.extend_from_slice(&frame.expect("exec output").into_bytes());
        }
        assert_eq!(String::from_utf8_lossy(&text).trim(), &id[..12]);
        // The exit code is recorded as the output ends: poll briefly.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let inspect = docker.inspect_exec(&exec.id).await.expect("inspect_exec");
            if inspect.running == Some(false) {
                assert_eq!(inspect.exit_code, Some(0));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "exec never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let force = RemoveContainerOptionsBuilder::default().force(true).build();
        docker
            .remove_container(&id, Some(force))
            .await
            .expect("remove -f");
        // The top endpoint of a missing container is a 404, typed.
        let err = docker.top_processes(&id, None).await;
        assert!(
            matches!(
                err,
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404,
                    ..
                })
            ),
            "{err:?}"
        );
    });
}
