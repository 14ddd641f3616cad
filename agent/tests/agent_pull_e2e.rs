//! The agent pulls the images its pods need from a real registry (Debian's docker-registry),
//! honours imagePullPolicy, and keeps running what it has when the registry is gone.

mod common;
mod registry;

use std::fs;
use std::time::Duration;

use common::{busybox_tar, Node, BUSYBOX};
use registry::{Auth, Registry};

#[test]
fn seed_pod_runs_from_pulled_images_and_the_node_carries_on_offline() {
    let reg = Registry::start(Auth::None);
    let image = reg.reference("kelp/busybox:1");
    let mut node = Node::new("pull");
    fs::write(
        &node.registries,
        format!(
            "mirrors:\n  \"{h}\":\n    endpoint: [\"http://{h}\"]\n",
            h = reg.host
        ),
    )
    .unwrap();
    let registries = node.registries.to_str().unwrap().to_string();
    let push = node.cli(&[
        "image",
        "push",
        busybox_tar().to_str().unwrap(),
        &image,
        "--registries",
        &registries,
    ]);
    assert!(
        push.status.success(),
        "push: {}",
        String::from_utf8_lossy(&push.stderr)
    );
    node.start_agent();

    // The seed's two-container pod, from the registry: the web container's page is what the
    // "database" container answers on 127.0.0.1:3306.
    node.apply(
        "seed.yaml",
        &format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: kubia}}
spec:
  containers:
  - name: web
    image: {image}
    command: ["sh", "-c"]
    args:
    - |
      mkdir -p /www/cgi-bin
      printf '#!/bin/sh\necho Content-Type: text/plain\necho\nwget -qO- http://127.0.0.1:3306/\n' > /www/cgi-bin/db
      chmod +x /www/cgi-bin/db
      exec httpd -f -p 8002 -h /www
  - name: db
    image: {image}
    command: ["sh", "-c", "mkdir /db; echo hello-from-db > /db/index.html; echo db up; exec httpd -f -p 3306 -h /db"]
"#
        ),
    );
    let pod = node.wait_running("kubia");
    let listed = String::from_utf8(node.cli(&["image", "list"]).stdout).unwrap();
    assert!(listed.contains(&image), "{listed}");
    node.wait_for_seed_page(&pod.uid);
    assert!(node.log_of(&pod, "db").contains("db up"));
    // The pull is reported as events, with its time and size.
    let pod = node.pod("kubia").unwrap();
    let reasons: Vec<&str> = pod.events.iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.contains(&"Pulling"), "{:?}", pod.events);
    let pulled = pod
        .events
        .iter()
        .find(|e| e.reason == "Pulled")
        .expect("a Pulled event");
    assert!(
        pulled.message.contains(&image)
            && pulled.message.contains(" in ")
            && pulled.message.contains("B"),
        "{}",
        pulled.message
    );

    // Never with an image the node does not have.
    node.apply(
        "never.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: never}}\nspec:\n  containers:\n  - {{name: c, image: '{}', imagePullPolicy: Never}}\n",
            reg.reference("kelp/absent:1")
        ),
    );
    let waiting = node.wait_for("ErrImageNeverPull", Duration::from_secs(30), |n| {
        let w = n.pod("never")?.status.container_statuses?[0]
            .state
            .clone()?
            .waiting?;
        (w.reason.as_deref() == Some("ErrImageNeverPull")).then_some(w)
    });
    assert!(waiting.message.unwrap().contains("kelp/absent:1"));

    // An image the registry does not have: ErrImagePull, then ImagePullBackOff.
    node.apply(
        "absent.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: absent}}\nspec:\n  containers:\n  - {{name: c, image: '{}'}}\n",
            reg.reference("kelp/absent:1")
        ),
    );
    node.wait_for("ImagePullBackOff", Duration::from_secs(30), |n| {
        let w = n.pod("absent")?.status.container_statuses?[0]
            .state
            .clone()?
            .waiting?;
        (w.reason.as_deref() == Some("ImagePullBackOff")).then_some(())
    });

    // The registry goes away: an imported image still runs, and a pod that always pulls runs
    // from what the node already has.
    drop(reg);
    node.apply(
        "local.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: local}}\nspec:\n  containers:\n  - {{name: c, image: '{BUSYBOX}', command: [sleep, '3600']}}\n"
        ),
    );
    node.wait_running("local");
    node.apply(
        "always.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: always}}\nspec:\n  containers:\n  - {{name: c, image: '{image}', imagePullPolicy: Always, command: [sleep, '3600']}}\n"
        ),
    );
    node.wait_running("always");
}
