//! docker steps against a real private dockerd: the input on stdin, stdout the output,
//! stderr the log; a flood, a sleeper and a memory eater end with the errors a wasm step
//! would get; a cancelled run's container is killed; no container is ever left behind;
//! images are never pulled; a folder with a Dockerfile is built at deploy, once.

mod common;

use common::dockerd::{Dockerd, IMAGE};
use common::Server;
use serde_json::{json, Value};

fn docker_step(cmd: &[&str], extra: Value) -> Value {
    let mut s = json!({"runtime": {"type": "docker", "image": IMAGE, "cmd": cmd}});
    if let Some(m) = extra.as_object() {
        for (k, v) in m {
            s[k] = v.clone();
        }
    }
    s
}

fn dev_on(d: &Dockerd) -> Server {
    Server::start_with(&["--docker-host", &d.host])
}

#[test]
fn a_docker_step_reads_the_input_and_writes_the_output_and_its_log() {
    let d = Dockerd::start();
    let s = dev_on(&d);
    s.deploy_ok(json!({"id": "boxed", "triggers": [{"event": "go"}],
        "steps": {
            "hello": {"path": "guest:hello"},
            "box": docker_step(&["sh", "-c", "cat; echo 'from the box' >&2"], json!({"after": [{"step": "hello"}], "env": {"GREETING": "hi"}})),
            "env": docker_step(&["sh", "-c", "echo \"{\\\"greeting\\\": \\\"$GREETING\\\", \\\"net\\\": \\\"$(ls /sys/class/net | tr '\\n' ' ')\\\"}\""], json!({"env": {"GREETING": "hi"}})),
            "after": {"path": "guest:echo", "after": [{"step": "box"}]}
        }}));
    let run = s.send_and_finish(json!({"name": "go", "data": {"name": "Ada"}}));
    assert_eq!(run["status"], "completed", "{run:#}");
    // `cat` echoed its stdin: the §3 input with the wasm step's output in it.
    let out = &run["steps"]["box"]["output"];
    assert_eq!(out["steps"]["hello"]["body"]["message"], "Hello, Ada!");
    assert_eq!(out["ctx"]["step_id"], "box");
    assert_eq!(run["steps"]["box"]["log"], "from the box\n");
    // The step's env is all it sees, and it has no network but loopback.
    assert_eq!(run["steps"]["env"]["output"]["greeting"], "hi");
    assert_eq!(run["steps"]["env"]["output"]["net"], "lo ");
    // The wasm step after it saw its output.
    assert_eq!(
        run["steps"]["after"]["output"]["steps"]["box"]["ctx"]["step_id"],
        "box"
    );
    d.wait_no_containers();
}

#[test]
fn hostile_containers_end_with_the_errors_a_wasm_step_gets() {
    let d = Dockerd::start();
    let s = dev_on(&d);
    let run_one = |id: &str, step: Value| {
        s.deploy_ok(json!({"id": id, "triggers": [{"event": id}], "retries": {"attempts": 0}, "steps": {"s": step}}));
        s.send_and_finish(json!({"name": id}))
    };
    let cases = [
        (
            "flood",
            docker_step(&["yes"], json!({"limits": {"stdout": "1MiB"}})),
            "stdout over 1 MiB",
        ),
        (
            "sleeper",
            docker_step(&["sleep", "60"], json!({"limits": {"timeout": "1s"}})),
            "deadline 1s exceeded",
        ),
        (
            "eater",
            docker_step(
                &["sh", "-c", "x=$(yes | head -c 100000000); echo done"],
                json!({"limits": {"memory": "8MiB"}}),
            ),
            "memory limit 8 MiB exceeded",
        ),
        (
            "quitter",
            docker_step(&["sh", "-c", "echo bye >&2; exit 3"], json!({})),
            "exited with code 3",
        ),
        (
            "tiny",
            docker_step(&["true"], json!({"limits": {"memory": "1MiB"}})),
            "below Docker's smallest",
        ),
    ];
    for (id, step, says) in cases {
        let run = run_one(id, step);
        assert_eq!(run["status"], "failed", "{id}: {run:#}");
        let err = run["steps"]["s"]["error"].as_str().unwrap_or_default();
        assert!(err.contains(says), "{id}: {err}");
    }
    d.wait_no_containers();
}

#[test]
fn a_cancelled_run_stops_its_running_container() {
    let d = Dockerd::start();
    let s = dev_on(&d);
    s.deploy_ok(json!({"id": "long", "triggers": [{"event": "go"}],
        "steps": {"s": docker_step(&["sleep", "300"], json!({"limits": {"timeout": "10m"}}))}}));
    let ev = s.send(json!({"name": "go"}));
    let run_id = s.runs_of(&ev)[0].clone();
    // Running means its container exists.
    s.wait_run(&run_id, |r| r["steps"]["s"]["status"] == "running");
    d.wait_a_container();
    let (st, body) = s.post(&format!("/v1/runs/{run_id}/cancel"), &json!({}));
    assert_eq!(st, 200, "{body}");
    let run = s.wait_done(&run_id);
    assert_eq!(run["status"], "cancelled");
    // Killed and removed long before its 300 s sleep would end.
    d.wait_no_containers();
}

#[test]
fn images_are_never_pulled_and_an_absent_engine_is_named() {
    let d = Dockerd::start();
    let s = dev_on(&d);
    let (st, body) = s.deploy(json!({"id": "pull", "triggers": [{"event": "e"}],
        "steps": {"s": {"runtime": {"type": "docker", "image": "alpine:3"}}}}));
    assert_eq!(st, 400, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("steps.s.runtime") && e.contains("alpine:3") && e.contains("never pulls"),
        "{e}"
    );
    assert!(d.has_image("alpine:3").is_none());
    let (st, body) = s.deploy(json!({"id": "host", "triggers": [{"event": "e"}],
        "steps": {"s": {"runtime": {"type": "docker", "image": IMAGE, "network": "host"}}}}));
    assert_eq!(st, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("network `host`"),
        "{body}"
    );

    // No engine at all: the deploy says where it looked.
    let none = Server::start_with(&["--docker-host", "unix:///nonexistent/docker.sock"]);
    let (st, body) = none.deploy(json!({"id": "x", "triggers": [{"event": "e"}],
        "steps": {"s": {"runtime": {"type": "docker", "image": IMAGE}}}}));
    assert_eq!(st, 400, "{body}");
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{e}"
    );
}

#[test]
fn a_folder_with_a_dockerfile_is_built_at_deploy_and_only_again_when_it_changes() {
    let d = Dockerd::start();
    let s = dev_on(&d);
    let tmp = tempfile::tempdir().unwrap();
    let step_dir = tmp.path().join("steps/shout");
    std::fs::create_dir_all(&step_dir).unwrap();
    std::fs::write(
        step_dir.join("Dockerfile"),
        format!("FROM {IMAGE}\nCOPY step.sh /step.sh\nCMD [\"sh\", \"/step.sh\"]\n"),
    )
    .unwrap();
    std::fs::write(
        step_dir.join("step.sh"),
        "cat > /dev/null; echo '{\"said\": \"v1\"}'\n",
    )
    .unwrap();
    let file = tmp.path().join("shout.json");
    std::fs::write(
        &file,
        json!({"id": "built", "triggers": [{"event": "go"}],
            "steps": {"s": {"path": "file://./steps/shout", "runtime": {"type": "docker"}}}})
        .to_string(),
    )
    .unwrap();
    let deploy = || {
        let (code, out, err) = common::cli(&["deploy", file.to_str().unwrap()], &s.url);
        assert_eq!(code, 0, "{out}{err}");
    };
    deploy();
    let images = |d: &Dockerd| -> Vec<String> {
        let docker = d.client();
        d.block_on(async {
            docker
                .list_images(None::<bollard::query_parameters::ListImagesOptions>)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|i| i.repo_tags)
                .filter(|t| t.starts_with("weir-build:"))
                .collect()
        })
    };
    let first = images(&d);
    assert_eq!(first.len(), 1, "{first:?}");
    let first_id = d.has_image(&first[0]).unwrap();
    let run = s.send_and_finish(json!({"name": "go"}));
    assert_eq!(
        run["steps"]["s"]["output"],
        json!({"said": "v1"}),
        "{run:#}"
    );

    // Unchanged: the same image, not built again.
    deploy();
    assert_eq!(images(&d), first);
    assert_eq!(d.has_image(&first[0]).unwrap(), first_id);

    // Changed: a new image under a new tag, and runs use it.
    std::fs::write(
        step_dir.join("step.sh"),
        "cat > /dev/null; echo '{\"said\": \"v2\"}'\n",
    )
    .unwrap();
    deploy();
    assert_eq!(images(&d).len(), 2);
    let run = s.send_and_finish(json!({"name": "go"}));
    assert_eq!(
        run["steps"]["s"]["output"],
        json!({"said": "v2"}),
        "{run:#}"
    );

    // A broken Dockerfile is refused at deploy with the build's own words.
    std::fs::write(
        step_dir.join("Dockerfile"),
        format!("FROM {IMAGE}\nRUN exit 7\n"),
    )
    .unwrap();
    let (code, out, err) = common::cli(&["deploy", file.to_str().unwrap()], &s.url);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("docker build failed") && err.contains("non-zero code: 7"),
        "{err}"
    );
    d.wait_no_containers();
}

#[test]
fn a_step_cut_short_by_a_clean_stop_runs_again_in_a_fresh_container() {
    let d = Dockerd::start();
    let s = dev_on(&d);
    // Outlasts the stop's grace period (5 s), so it is run again after the restart as
    // the same attempt, under the same container name.
    s.deploy_ok(json!({"id": "slow", "triggers": [{"event": "go"}],
        "steps": {"s": docker_step(&["sh", "-c", "sleep 8; cat"], json!({"limits": {"timeout": "60s"}}))}}));
    let ev = s.send(json!({"name": "go", "data": {"n": 7}}));
    let run_id = s.runs_of(&ev)[0].clone();
    s.wait_run(&run_id, |r| r["steps"]["s"]["status"] == "running");
    d.wait_a_container();
    let s = s.stop_and_restart();
    let run = s.wait_done(&run_id);
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["steps"]["s"]["output"]["event"]["data"]["n"], 7);
    // A clean stop does not count the attempt it cut short.
    assert_eq!(run["steps"]["s"]["attempts"], 1, "{run:#}");
    d.wait_no_containers();
}

#[test]
fn weir_dev_redeploys_a_docker_folder_edited_in_place() {
    let d = Dockerd::start();
    let tmp = tempfile::tempdir().unwrap();
    let functions = tmp.path().join("functions");
    let step_dir = functions.join("steps/say");
    std::fs::create_dir_all(&step_dir).unwrap();
    std::fs::write(
        step_dir.join("Dockerfile"),
        format!("FROM {IMAGE}\nCOPY say.sh /say.sh\nCMD [\"sh\", \"/say.sh\"]\n"),
    )
    .unwrap();
    std::fs::write(
        step_dir.join("say.sh"),
        "cat > /dev/null; echo '{\"said\": \"v1\"}'\n",
    )
    .unwrap();
    std::fs::write(
        functions.join("say.json"),
        json!({"id": "say", "triggers": [{"event": "go"}],
            "steps": {"s": {"path": "file://./steps/say", "runtime": {"type": "docker"}}}})
        .to_string(),
    )
    .unwrap();
    let mut s = Server::start_env(&["--docker-host", &d.host], &[], Some(&functions));
    assert!(s.stdout.contains("loaded say v1"), "{}", s.stdout);
    // Same size, new content: only the edit (time and bytes) tells it apart.
    std::fs::write(
        step_dir.join("say.sh"),
        "cat > /dev/null; echo '{\"said\": \"v2\"}'\n",
    )
    .unwrap();
    s.wait_output("reloaded say v2");
    let run = s.send_and_finish(json!({"name": "go"}));
    assert_eq!(
        run["steps"]["s"]["output"],
        json!({"said": "v2"}),
        "{run:#}"
    );
}
