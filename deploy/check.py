#!/usr/bin/env python3
"""CI's check of the shipped deployment files (issue 17), with what installs from Debian (python3-yaml).

No cluster and no Docker daemon are needed, and none is pretended: this reads the files and checks what the
distributed run depends on.

- deploy/kubernetes/loadgen-job.yaml: a batch/v1 Indexed Job with completions = parallelism = --agents, no
  retries, every container with CPU and memory requests, run as non-root, its agents told `run`, a --target
  that names a Service of deploy/kubernetes/server.yaml (name:port, the port the Service exposes), a
  --start-at placeholder, and --json=- (the report as the last stdout line, for `merge -`).
- deploy/kubernetes/server.yaml: the Service's selector matches the Deployment's pod labels and its
  targetPort a container port.
- deploy/docker/docker-compose.yml: a server and exactly --agents agents, their JOB_COMPLETION_INDEX values
  0..N-1 each once, one shared command with --start-at from ${START_AT} and --json=-; then, where the
  `docker compose` plugin exists, `docker compose config` must accept the file.
- deploy/docker/Dockerfile: multi-stage (a build stage and `loadgen` and `server` stages), a non-root USER in
  the runtime images.

`python3 deploy/check.py --self-test` breaks each rule on a copy and expects the check to fail.
"""

import copy
import os
import re
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_all(path):
    with open(os.path.join(ROOT, path)) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def flag(args, name):
    """The value of --name=V or --name V in args, or None."""
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def check_kubernetes(job_docs, server_docs):
    errors = []
    jobs = [d for d in job_docs if d.get("kind") == "Job"]
    if len(jobs) != 1:
        return ["loadgen-job.yaml: expected exactly one Job"]
    job = jobs[0]
    if job.get("apiVersion") != "batch/v1":
        errors.append("Job: apiVersion must be batch/v1")
    spec = job.get("spec") or {}
    if spec.get("completionMode") != "Indexed":
        errors.append("Job: completionMode must be Indexed (JOB_COMPLETION_INDEX is each agent's index)")
    n = spec.get("completions")
    if not isinstance(n, int) or n < 1:
        errors.append("Job: completions must be a positive integer")
    if spec.get("parallelism") != n:
        errors.append("Job: parallelism must equal completions (every agent runs at once)")
    if spec.get("backoffLimit") != 0:
        errors.append("Job: backoffLimit must be 0 (a retried agent starts late)")
    pod = (spec.get("template") or {}).get("spec") or {}
    if pod.get("restartPolicy") != "Never":
        errors.append("Job: restartPolicy must be Never")
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        errors.append("Job: the pod must run as non-root (securityContext.runAsNonRoot)")
    containers = pod.get("containers") or []
    if len(containers) != 1:
        errors.append("Job: expected one container, the agent")
        return errors
    c = containers[0]
    requests = (c.get("resources") or {}).get("requests") or {}
    for r in ("cpu", "memory"):
        if r not in requests:
            errors.append(f"Job: the agent needs a {r} request")
    args = [str(a) for a in c.get("args") or []]
    if not args or args[0] != "run":
        errors.append("Job: the agent's args must start with `run`")
    if flag(args, "--agents") != str(n):
        errors.append(f"Job: --agents must equal completions ({n}), got {flag(args, '--agents')}")
    if flag(args, "--agent-index") is not None:
        errors.append("Job: no --agent-index: each pod takes JOB_COMPLETION_INDEX")
    if flag(args, "--start-at") != "__START_AT__":
        errors.append("Job: --start-at must be the __START_AT__ placeholder the README's command replaces")
    if flag(args, "--json") != "-":
        errors.append("Job: --json=- (the report as the last line of stdout, for `merge -`)")
    target = flag(args, "--target") or ""
    services = {
        d["metadata"]["name"]: d for d in server_docs if d.get("kind") == "Service"
    }
    host, _, port = target.rpartition(":")
    svc = services.get(host)
    if svc is None:
        errors.append(f"Job: --target {target!r} must name a Service of server.yaml ({sorted(services)})")
    else:
        ports = [p.get("port") for p in svc["spec"].get("ports") or []]
        if not port.isdigit() or int(port) not in ports:
            errors.append(f"Job: --target port {port!r} is not a port of Service {host} ({ports})")
        deployments = [d for d in server_docs if d.get("kind") == "Deployment"]
        selector = svc["spec"].get("selector") or {}
        matched = [
            d for d in deployments
            if selector and selector.items() <= ((d["spec"]["template"]["metadata"].get("labels") or {}).items())
        ]
        if not matched:
            errors.append(f"Service {host}: its selector matches no Deployment's pods")
        else:
            named = {
                p.get("name"): p.get("containerPort")
                for k in matched[0]["spec"]["template"]["spec"]["containers"]
                for p in k.get("ports") or []
            }
            for p in svc["spec"].get("ports") or []:
                tp = p.get("targetPort", p.get("port"))
                if tp not in named and tp not in named.values():
                    errors.append(f"Service {host}: targetPort {tp!r} is no container port ({named})")
    return errors


def check_compose(doc):
    errors = []
    services = doc.get("services") or {}
    if "server" not in services:
        errors.append("compose: no `server` service")
    agents = {k: v for k, v in services.items() if k.startswith("agent-")}
    if not agents:
        return errors + ["compose: no agent-N services"]
    commands = {tuple(str(a) for a in v.get("command") or []) for v in agents.values()}
    if len(commands) != 1:
        errors.append("compose: the agents must share one command")
    args = list(next(iter(commands)))
    n = flag(args, "--agents")
    if n != str(len(agents)):
        errors.append(f"compose: --agents {n} but {len(agents)} agent services")
    indexes = sorted(str((v.get("environment") or {}).get("JOB_COMPLETION_INDEX")) for v in agents.values())
    if indexes != sorted(str(i) for i in range(len(agents))):
        errors.append(f"compose: JOB_COMPLETION_INDEX values must be 0..{len(agents) - 1} once each, got {indexes}")
    if not (flag(args, "--start-at") or "").startswith("${START_AT"):
        errors.append("compose: --start-at must come from ${START_AT}")
    if flag(args, "--json") != "-":
        errors.append("compose: --json=- (the report as the last line of stdout)")
    target = flag(args, "--target") or ""
    if target.rpartition(":")[0] not in services:
        errors.append(f"compose: --target {target!r} names no service")
    return errors


def check_dockerfile(text):
    errors = []
    stages = re.findall(r"^FROM\s+\S+(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    names = {s.lower() for s in stages if s}
    if len(stages) < 2:
        errors.append("Dockerfile: not multi-stage")
    for want in ("build", "loadgen", "server"):
        if want not in names:
            errors.append(f"Dockerfile: no `{want}` stage")
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or any(u.split(":")[0] in ("root", "0") for u in users):
        errors.append("Dockerfile: the runtime images must set a non-root USER")
    return errors


def docker_compose_config():
    """`docker compose config` where the plugin exists: (ran, error or None)."""
    if shutil.which("docker") is None:
        return False, None
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode != 0:
        return False, None
    env = dict(os.environ, START_AT="2030-01-01T00:00:00Z")
    r = subprocess.run(
        ["docker", "compose", "-f", os.path.join(ROOT, "deploy/docker/docker-compose.yml"), "config", "-q"],
        capture_output=True, text=True, env=env,
    )
    return True, (r.stderr.strip() or "failed") if r.returncode != 0 else None


def check_all(job, server, compose, dockerfile):
    return check_kubernetes(job, server) + check_compose(compose) + check_dockerfile(dockerfile)


def inputs():
    with open(os.path.join(ROOT, "deploy/docker/Dockerfile")) as f:
        dockerfile = f.read()
    return (
        load_all("deploy/kubernetes/loadgen-job.yaml"),
        load_all("deploy/kubernetes/server.yaml"),
        load_all("deploy/docker/docker-compose.yml")[0],
        dockerfile,
    )


def self_test():
    """Each broken copy must fail the check: the check is not one that cannot fail."""
    good = inputs()
    assert check_all(*good) == [], check_all(*good)

    def job_spec(d):
        return [x for x in d[0] if x["kind"] == "Job"][0]["spec"]

    def agent_args(d):
        return job_spec(d)["template"]["spec"]["containers"][0]["args"]

    breakages = {
        "parallelism": lambda d: job_spec(d).__setitem__("parallelism", 1),
        "not indexed": lambda d: job_spec(d).__setitem__("completionMode", "NonIndexed"),
        "no requests": lambda d: job_spec(d)["template"]["spec"]["containers"][0].__setitem__("resources", {}),
        "agents": lambda d: agent_args(d).__setitem__(agent_args(d).index("--agents=4"), "--agents=3"),
        "target": lambda d: agent_args(d).__setitem__(
            agent_args(d).index("--target=sockpool-server:7000"), "--target=nowhere:7000"),
        "compose agents": lambda d: d[2]["services"].pop("agent-3"),
        "dockerfile root": lambda d: None,
    }
    for name, breaking in breakages.items():
        d = copy.deepcopy(good)
        if name == "dockerfile root":
            d = d[:3] + (d[3].replace("USER 65532:65532", "USER root"),)
        else:
            breaking(d)
        assert check_all(*d), f"breaking {name!r} went unnoticed"
    print(f"deploy/check.py self-test: {len(breakages)} breakages caught")


def main():
    if "--self-test" in sys.argv:
        self_test()
    errors = check_all(*inputs())
    ran, err = docker_compose_config()
    if err:
        errors.append(f"docker compose config: {err}")
    for e in errors:
        print(f"deploy/check.py: {e}", file=sys.stderr)
    if errors:
        sys.exit(1)
    job = [d for d in inputs()[0] if d["kind"] == "Job"][0]
    print(
        f"deploy/check.py: Job ({job['spec']['completions']} indexed agents), Service, compose and Dockerfile ok; "
        + ("`docker compose config` ok" if ran else "`docker compose` not installed here: its own check skipped")
    )


if __name__ == "__main__":
    main()
