"""charts/imap-api rendered with several value sets: one test per behaviour (Airflow's style)."""
from __future__ import annotations

import base64
import tomllib

import pytest
import yaml

from imapapi.settings import OPTIONS, load_settings

from .render import (CHART, FULL, VALUE_SETS, containers, env_of, find, names, notes, one,
                     render, workloads)

pytest.importorskip("helm_python")

# Options the chart sets per container (env) or from other values, never from values.config.
CHART_MANAGED = {
    "dbs.redis", "api.host", "api.port", "service.stateDir", "service.secret",
    "service.encryptionKey", "service.keyFile", "api.bootstrapToken", "worker.queues", "worker.concurrency",
    "sidecar.id", "sidecar.drainBudget", "sidecar.metricsPort", "worker.metricsPort", "metrics.host",
}


def config_toml(docs) -> dict:
    return tomllib.loads(one(docs, "ConfigMap", FULL)["data"]["config.toml"])


def secret_data(docs, name) -> dict[str, str]:
    data = one(docs, "Secret", name).get("data") or {}
    return {k: base64.b64decode(v).decode() for k, v in data.items()}


def render_error(values) -> str:
    with pytest.raises(Exception) as info:
        render(values)
    return str(info.value)


# -- lint and schema ---------------------------------------------------------------------------
def test_lint_strict_is_clean():
    import helm_python

    result = helm_python.lint(str(CHART), strict=True)
    assert result["errors"] == [] and result["messages"] == [], result


@pytest.mark.parametrize("values", [
    {"api": {"replica": 3}},                          # typo of replicas
    {"config": {"log": {"levl": "debug"}}},           # typo of an option
    {"config": {"service": {"commandTimeout": "ten seconds"}}},
    {"sidecar": {"replicas": "3"}},                   # string, not a number
    {"redis": {"database": 16}},
], ids=["component-key", "config-key", "duration", "type", "range"])
def test_schema_rejects_bad_values_at_install_time(values):
    assert "schema" in render_error(values)


# -- what renders ------------------------------------------------------------------------------
def test_defaults_render_every_component():
    assert names(render()) == sorted([
        f"ConfigMap/{FULL}", f"Secret/{FULL}", f"Secret/{FULL}-redis", f"ServiceAccount/{FULL}",
        f"Deployment/{FULL}-api", f"Service/{FULL}-api", f"PodDisruptionBudget/{FULL}-api",
        f"Deployment/{FULL}-worker-requests", f"Deployment/{FULL}-worker-submit",
        f"Deployment/{FULL}-worker-webhooks",
        f"StatefulSet/{FULL}-sidecar", f"Service/{FULL}-sidecar",
        f"PodDisruptionBudget/{FULL}-sidecar",
        f"StatefulSet/{FULL}-redis", f"Service/{FULL}-redis",
    ])


def test_every_program_option_is_in_values_config_or_set_by_the_chart():
    config = yaml.safe_load((CHART / "values.yaml").read_text())["config"]
    in_values = {f"{table}.{key}" for table, opts in config.items() for key in opts}
    assert in_values | CHART_MANAGED == set(OPTIONS), (
        f"missing from values.config: {sorted(set(OPTIONS) - in_values - CHART_MANAGED)}; "
        f"unknown to the program: {sorted(in_values - set(OPTIONS))}")
    assert not in_values & CHART_MANAGED


def test_config_file_is_accepted_by_the_program(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(one(render(), "ConfigMap", FULL)["data"]["config.toml"])
    settings = load_settings([], env={"IMAPAPI_CONFIG": str(path), "IMAPAPI_DOTENV": "0"})
    assert settings.command_timeout == 10.0 and settings.submit_max_size == 25 * 1024 * 1024


def test_config_values_reach_the_config_file():
    docs = render({"config": {"log": {"level": "debug"}, "sidecar": {"pool": 64},
                              "api": {"maxBody": "10M"}}})
    config = config_toml(docs)
    assert config["log"]["level"] == "debug" and config["sidecar"]["pool"] == 64
    assert config["api"]["maxBody"] == "10M"


def test_empty_config_values_are_left_out():
    assert "maxBody" not in config_toml(render())["api"]


def test_config_change_rolls_the_pods():
    before = one(render(), "Deployment", f"{FULL}-api")["spec"]["template"]["metadata"]
    after = one(render({"config": {"log": {"level": "debug"}}}), "Deployment", f"{FULL}-api")
    assert (after["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            != before["annotations"]["checksum/config"])


# -- Redis -------------------------------------------------------------------------------------
def test_bundled_redis_has_a_volume_and_aof():
    docs = render()
    sts = one(docs, "StatefulSet", f"{FULL}-redis")
    args = containers(sts)[0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert secret_data(docs, f"{FULL}-redis")["redis-url"] == f"redis://{FULL}-redis:6379/0"


def test_bundled_redis_password_goes_into_the_url_and_the_server():
    docs = render(VALUE_SETS["production"])
    assert secret_data(docs, f"{FULL}-redis")["redis-url"] == (
        f"redis://:p%40ss+word@{FULL}-redis:6379/0")
    redis = containers(one(docs, "StatefulSet", f"{FULL}-redis"))[0]
    assert "--requirepass" in redis["args"] and "REDIS_PASSWORD" in env_of(redis)


def test_external_redis_url_replaces_the_bundled_one():
    docs = render(VALUE_SETS["external-redis"])
    assert not find(docs, "StatefulSet", f"{FULL}-redis")
    assert secret_data(docs, f"{FULL}-redis")["redis-url"] == "redis://redis.example.internal:6379/2"


def test_external_redis_needs_a_url():
    assert "externalRedis.url or externalRedis.existingSecret" in render_error(
        {"redis": {"enabled": False}})


def test_every_container_reads_redis_url_from_the_secret():
    docs = render(VALUE_SETS["existing-secret"])
    for workload in workloads(docs):
        ref = env_of(containers(workload)[0])["REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "my-redis", "key": "url"}, workload["metadata"]["name"]


# -- secrets -----------------------------------------------------------------------------------
def test_existing_secret_is_used_and_nothing_rendered():
    docs = render(VALUE_SETS["existing-secret"])
    assert not find(docs, "Secret")
    api = containers(one(docs, "Deployment", f"{FULL}-api"))[0]
    assert env_of(api)["WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "my-imap-api"


def test_key_file_is_mounted_and_passed():
    docs = render(VALUE_SETS["existing-secret"])
    pod = one(docs, "Deployment", f"{FULL}-api")["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["KEY_FILE"]["value"] == "/etc/imap-api/keys/encryption.key"
    assert "ENCRYPTION_KEY" not in env     # it would take precedence over the file
    volume = next(v for v in pod["volumes"] if v["name"] == "keyfile")
    assert volume["secret"] == {"secretName": "my-imap-api", "defaultMode": 0o400,
                                "items": [{"key": "encryption-key-file", "path": "encryption.key"}]}


def test_secret_values_land_in_the_secret():
    data = secret_data(render(VALUE_SETS["production"]), FULL)
    assert data.pop("bootstrap-token")
    assert data == {"webhook-secret": "whs", "encryption-key": "k" * 32}


def test_an_encryption_key_is_generated_when_none_is_given():
    docs = render()
    data = secret_data(docs, FULL)
    assert set(data) == {"encryption-key", "bootstrap-token"} and len(data["encryption-key"]) == 48
    assert one(docs, "Secret", FULL)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_every_process_gets_the_same_encryption_key():
    for workload in workloads(render()):
        if workload["metadata"]["name"].endswith("-redis"):
            continue
        ref = env_of(containers(workload)[0])["ENCRYPTION_KEY"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": FULL, "key": "encryption-key"}, workload["metadata"]["name"]


def test_a_bootstrap_token_is_generated_and_given_to_the_api_only():
    docs = render()
    token = secret_data(docs, FULL)["bootstrap-token"]
    assert len(token) == 43 and token.isalnum()
    for workload in workloads(docs):
        env = env_of(containers(workload)[0])
        if workload["metadata"]["name"] == f"{FULL}-api":
            ref = env["API_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": FULL, "key": "bootstrap-token", "optional": False}
        else:
            assert "API_BOOTSTRAP_TOKEN" not in env, workload["metadata"]["name"]
    text = notes({})
    assert f"get secret {FULL} -o jsonpath='{{.data.bootstrap-token}}'" in text
    assert "tokens create --scope" not in text


def test_bootstrap_token_given_from_values_or_an_existing_secret():
    given = "g" * 40
    assert secret_data(render({"secrets": {"bootstrapToken": {"value": given}}}),
                       FULL)["bootstrap-token"] == given
    api = containers(one(render(VALUE_SETS["existing-secret"]), "Deployment", f"{FULL}-api"))[0]
    ref = env_of(api)["API_BOOTSTRAP_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "my-imap-api", "key": "bootstrap-token", "optional": True}
    assert "schema" in render_error({"secrets": {"bootstrapToken": {"value": "short"}}})


def test_bootstrap_token_off_leaves_the_manual_step():
    for values in ({"secrets": {"bootstrapToken": {"enabled": False}}},
                   {"config": {"api": {"auth": "off"}}}):
        docs = render(values)
        assert "bootstrap-token" not in secret_data(docs, FULL)
        api = containers(one(docs, "Deployment", f"{FULL}-api"))[0]
        assert "API_BOOTSTRAP_TOKEN" not in env_of(api)
    assert "tokens create --scope='*'" in notes({"secrets": {"bootstrapToken": {"enabled": False}}})


# -- components --------------------------------------------------------------------------------
def test_api_listens_where_its_port_and_probes_point():
    api = containers(one(render({"api": {"containerPort": 8080}}), "Deployment", f"{FULL}-api"))[0]
    assert env_of(api)["API_PORT"]["value"] == "8080"
    assert api["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert api["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}


def test_one_worker_deployment_per_queue_group():
    docs = render()
    queues = {d["metadata"]["name"]: env_of(containers(d)[0])["WORKER_QUEUES"]["value"]
              for d in find(docs, "Deployment") if "-worker-" in d["metadata"]["name"]}
    assert queues == {f"{FULL}-worker-requests": "celery", f"{FULL}-worker-submit": "submit",
                      f"{FULL}-worker-webhooks": "webhooks"}


def test_worker_group_overrides_replicas_and_resources():
    docs = render({"worker": {"groups": {"webhooks": {"queues": "webhooks", "replicas": 4,
                                                      "resources": {"requests": {"cpu": "1"}}}}}})
    webhooks = one(docs, "Deployment", f"{FULL}-worker-webhooks")
    assert webhooks["spec"]["replicas"] == 4
    assert containers(webhooks)[0]["resources"] == {"requests": {"cpu": "1"}}
    assert one(docs, "Deployment", f"{FULL}-worker-requests")["spec"]["replicas"] == 1


def test_worker_liveness_is_the_heartbeat_file_not_a_broker_ping():
    worker = containers(one(render(), "Deployment", f"{FULL}-worker-requests"))[0]
    assert worker["livenessProbe"]["exec"]["command"] == ["imap-api-probe", "worker"]
    assert "readinessProbe" not in worker


def test_sidecar_replicas_get_a_stable_identity_each():
    docs = render(VALUE_SETS["sidecars-3"])
    sts = one(docs, "StatefulSet", f"{FULL}-sidecar")
    assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == f"{FULL}-sidecar"
    sidecar = containers(sts)[0]
    assert env_of(sidecar)["SIDECAR_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert one(docs, "PodDisruptionBudget", f"{FULL}-sidecar")["spec"]["maxUnavailable"] == 1


def test_sidecar_probes_and_handover():
    sidecar = containers(one(render(), "StatefulSet", f"{FULL}-sidecar"))[0]
    assert sidecar["readinessProbe"]["exec"]["command"] == ["imap-api-probe", "sidecar"]
    assert sidecar["livenessProbe"]["exec"]["command"] == ["imap-api-probe", "sidecar", "--live"]
    assert sidecar["lifecycle"]["preStop"]["exec"]["command"] == [
        "imap-api-probe", "sidecar", "--handover"]


@pytest.mark.parametrize("values, grace, budget", [
    ({}, 120, "105s"),      # default: ~700 accounts per replica hand over paced
    ({"sidecar": {"terminationGracePeriodSeconds": 300}}, 300, "285s"),
    ({"sidecar": {"terminationGracePeriodSeconds": 8}}, 8, "1s"),   # never below 1 s
], ids=["default", "longer", "floor"])
def test_sidecar_drain_budget_is_the_grace_period_minus_fifteen_seconds(values, grace, budget):
    sts = one(render(values), "StatefulSet", f"{FULL}-sidecar")
    assert sts["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == grace
    assert env_of(containers(sts)[0])["SIDECAR_DRAIN_BUDGET"]["value"] == budget


def test_probe_overrides_merge_over_the_defaults():
    api = containers(one(render({"api": {"probes": {"liveness": {"periodSeconds": 60}}}}),
                         "Deployment", f"{FULL}-api"))[0]
    assert api["livenessProbe"]["periodSeconds"] == 60
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"


def test_flower_is_off_by_default():
    assert not [d for d in render() if "flower" in d["metadata"]["name"]]


def test_flower_with_basic_auth_service_and_ingress():
    docs = render(VALUE_SETS["flower-ingress"])
    flower = containers(one(docs, "Deployment", f"{FULL}-flower"))[0]
    assert flower["args"] == ["flower", "--flower.port=5555"]
    env = env_of(flower)
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"] == {
        "name": f"{FULL}-flower", "key": "flower-basic-auth"}
    assert env["FLOWER_UNAUTHENTICATED_API"]["value"] == "false"
    assert secret_data(docs, f"{FULL}-flower") == {"flower-basic-auth": "admin:s3cret"}
    one(docs, "Service", f"{FULL}-flower")
    ingress = one(docs, "Ingress", f"{FULL}-flower")
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] == (
        f"{FULL}-flower")


def test_flower_needs_a_password():
    assert "flower.basicAuth.password is required" in render_error({"flower": {"enabled": True}})


def test_api_ingress_with_tls():
    ingress = one(render(VALUE_SETS["flower-ingress"]), "Ingress", f"{FULL}-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "api-tls", "hosts": ["imap-api.example.com"]}]


def test_hpa_replaces_fixed_replicas():
    docs = render(VALUE_SETS["hpa"])
    assert "replicas" not in one(docs, "Deployment", f"{FULL}-api")["spec"]
    hpas = {h["metadata"]["name"]: h["spec"]["maxReplicas"] for h in find(docs, "HorizontalPodAutoscaler")}
    assert hpas == {f"{FULL}-api": 10, f"{FULL}-worker-requests": 6,
                    f"{FULL}-worker-submit": 6, f"{FULL}-worker-webhooks": 6}
    for name in hpas:
        assert "replicas" not in one(docs, "Deployment", name)["spec"]


# -- hardening ---------------------------------------------------------------------------------
@pytest.mark.parametrize("set_name", sorted(VALUE_SETS))
def test_hardened_defaults_on_every_pod(set_name):
    for workload in workloads(render(VALUE_SETS[set_name])):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert container["resources"]["requests"], name


def test_read_only_root_gets_writable_tmp_and_state():
    pod = one(render(), "Deployment", f"{FULL}-api")["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert {"/tmp", "/var/lib/imap-api", "/etc/imap-api/config.toml"} <= mounts
    assert {v["name"]: next(iter(set(v) - {"name"})) for v in pod["volumes"]} == {
        "config": "configMap", "tmp": "emptyDir", "state": "emptyDir"}


# -- optional extras ---------------------------------------------------------------------------
def test_network_policies_keep_redis_to_the_release():
    docs = render(VALUE_SETS["production"])
    assert {d["metadata"]["name"] for d in find(docs, "NetworkPolicy")} == {
        f"{FULL}-api", f"{FULL}-internal", f"{FULL}-redis"}
    redis = one(docs, "NetworkPolicy", f"{FULL}-redis")
    assert redis["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "imap-api", "app.kubernetes.io/instance": "rel"}


def test_service_monitor_scrapes_api_and_sidecar_metrics():
    docs = render(VALUE_SETS["production"])
    monitor = one(docs, "ServiceMonitor", FULL)
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["http", "metrics"]
    sidecar = containers(one(docs, "StatefulSet", f"{FULL}-sidecar"))[0]
    assert env_of(sidecar)["SIDECAR_METRICS_PORT"]["value"] == "9464"
    assert one(docs, "Service", f"{FULL}-sidecar")["spec"]["ports"][0]["port"] == 9464


def test_notes_say_how_to_reach_api_and_flower():
    text = notes(VALUE_SETS["flower-ingress"])
    assert "https://imap-api.example.com/" in text and "http://flower.example.com/" in text
    assert f"port-forward svc/{FULL}-api" in notes({})


# -- Kubernetes schemas ------------------------------------------------------------------------
@pytest.mark.parametrize("version", ["1.29.0", "1.32.0"])
@pytest.mark.parametrize("set_name", sorted(VALUE_SETS))
def test_manifests_validate_strictly(set_name, version):
    import kubernetes_validate

    checked = 0
    for doc in render(VALUE_SETS[set_name]):
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue   # a CRD: no schema bundled with kubernetes-validate
        kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 10
