"""Loading configs: positions, every error at once, env expansion, imports, dump round trip."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flownb.errors import ConfigError
from flownb.loader import config_from_dict, dump_config, load_config, parse_config
from flownb.registry import Registry

DIAG = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<msg>.+)$")


def errors(text: str, registry: Registry, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, filename="wf.yaml", registry=registry, **kwargs)  # type: ignore[arg-type]
    lines = [str(d) for d in info.value.diagnostics]
    for line in lines:
        assert DIAG.match(line), line
    return lines


def test_valid_config_loads_with_typed_module_config(registry: Registry) -> None:
    config = parse_config(
        """
modules:
  - name: a
    type: test.thing
    config: {schedule: "*/5 * * * *"}
  - name: b
    type: test.thing
    dependsOn: [a]
    config: {uses: a}
""",
        registry=registry,
    )
    assert [m.name for m in config.modules] == ["a", "b"]
    assert config.modules[1].config.uses == "a"  # type: ignore[union-attr]
    assert config.source is not None
    assert config.source.locate(("modules", 1, "config", "uses")).line == 9


def test_malformed_yaml_reports_line_and_column(registry: Registry) -> None:
    (line,) = errors("modules:\n  - name: a\n    type: [unclosed\n", registry)
    m = DIAG.match(line)
    assert m and m["file"] == "wf.yaml" and m["line"] == "4"
    assert "invalid YAML" in m["msg"]


def test_every_error_is_reported_at_once(registry: Registry) -> None:
    lines = errors(
        """
modules:
  - name: a
    type: test.thnig
  - name: b
    type: test.thing
    config: {failIn: 3, bogus: 1}
  - name: b
    type: test.thing
    dependsOn: [nowhere]
  - name: c
    type: test.thing
    config: {schedule: "61 * * * *", uses: b}
  - type: test.thing
""",
        registry,
    )
    text = "\n".join(lines)
    assert (
        "wf.yaml:4:11: modules[0].type: unknown module type 'test.thnig'; did you mean "
        "'test.thing'?" in text
    )
    assert "wf.yaml:7:22: modules[1].config.failIn: Input should be a valid string (got 3)" in text
    assert "modules[1].config.bogus: unknown field 'bogus'" in text
    assert "wf.yaml:8:11: modules[2].name: duplicate module name 'b'" in text
    assert "modules[2].dependsOn[0]: unknown module 'nowhere'" in text
    assert "modules[3].config.schedule: invalid cron expression '61 * * * *'" in text
    assert "modules[3].config.uses: module 'b' is a test.thing, which does not provide" not in text
    assert "modules[4].name: missing required field 'name'" in text
    assert len(lines) >= 7


def test_unknown_field_suggests_the_close_one(registry: Registry) -> None:
    (line,) = errors("modules:\n  - name: a\n    type: test.thing\n    confg: {}\n", registry)
    assert line == "wf.yaml:4:5: modules[0].confg: unknown field 'confg'; did you mean 'config'?"


def test_duplicate_yaml_keys_are_errors_not_silent_overwrites(registry: Registry) -> None:
    (line,) = errors("modules: []\nmodules: []\n", registry)
    assert line.startswith("wf.yaml:2:1: modules: duplicate key 'modules'")


def test_reference_to_wrong_kind_and_missing_handler(registry: Registry) -> None:
    lines = errors(
        """
modules:
  - name: a
    type: test.thing
  - name: echo
    type: test.echo
  - name: b
    type: test.thing
    config: {uses: echo}
workflows:
  messaging:
    subscriptions:
      - {topic: t, handler: ecoh}
""",
        registry,
    )
    text = "\n".join(lines)
    assert (
        "modules[2].config.uses: module 'echo' is a test.echo, which does not provide "
        "'thing'" in text
    )
    assert (
        "workflows.messaging.subscriptions[0].handler: unknown handler or pipeline 'ecoh'; "
        "did you mean 'echo'?" in text
    )
    assert "workflows.messaging: no module provides 'broker'" in text


def test_implicit_reference_needs_exactly_one_provider(registry: Registry) -> None:
    rest = (
        "workflows:\n  messaging:\n    subscriptions: [{topic: t, handler: p}]\n"
        "pipelines:\n  p: [{type: log, message: hi}]\n"
    )
    one = "modules:\n  - {name: b1, type: test.broker}\n"
    parse_config(one + rest, registry=registry)
    two = one + "  - {name: b2, type: test.broker}\n"
    (line,) = errors(two + rest, registry)
    assert "'broker' is required because several modules provide 'broker': b1, b2" in line


def test_dependency_cycle_is_named(registry: Registry) -> None:
    lines = errors(
        """
modules:
  - {name: a, type: test.thing, dependsOn: [c]}
  - {name: b, type: test.thing, dependsOn: [a]}
  - {name: c, type: test.thing, config: {uses: b}}
""",
        registry,
    )
    assert any("dependency cycle: a -> c -> b -> a" in line for line in lines), lines


def test_state_machine_states_and_hooks_are_checked(registry: Registry) -> None:
    lines = errors(
        """
modules:
  - {name: sm, type: test.thing}
pipelines:
  h: [{type: log, message: x}]
workflows:
  statemachine:
    engine: sm
    definitions:
      - name: order
        initialState: new
        states: {new: {}, done: {isFinal: true}}
        transitions:
          finish: {fromState: new, toState: donee}
          reopen: {fromState: old, toState: new}
    hooks:
      - {transitions: [finsh], handler: h}
""",
        registry,
    )
    text = "\n".join(lines)
    assert "transitions.finish.toState: unknown state 'donee'; did you mean 'done'?" in text
    assert "transitions.reopen.fromState: unknown state 'old'" in text
    assert "hooks[0].transitions[0]: unknown transition 'finsh'; did you mean 'finish'?" in text
    assert "engine: module 'sm' is a test.thing, which does not provide 'statemachine'" in text


def test_trigger_targets_are_checked(registry: Registry) -> None:
    lines = errors(
        """
pipelines:
  nightly: [{type: log, message: x}]
triggers:
  schedule:
    jobs:
      - {cron: "0 3 * * *", workflow: pipeline, action: nightli}
      - {interval: 5s, workflow: statemachine, action: go}
  http:
    routes:
      - {path: /x, workflow: pipeline, action: nightly}
      - {path: /y, cron: "0 3 * * * * *", interval: 5s}
""",
        registry,
    )
    text = "\n".join(lines)
    assert "jobs[0].action: unknown pipeline 'nightli'; did you mean 'nightly'?" in text
    assert "jobs[1].workflow: workflows.statemachine is not defined in this config" in text
    assert "triggers.http.routes[1].cron: unknown field 'cron'" in text
    assert "triggers.http.routes[1].workflow: missing required field 'workflow'" in text


def test_cron_and_timer_choice_are_checked(registry: Registry) -> None:
    lines = errors(
        """
pipelines:
  nightly: [{type: log, message: x}]
triggers:
  schedule:
    jobs:
      - {cron: "0 3 * * * * *", workflow: pipeline, action: nightly}
      - {interval: 5s, cron: "0 3 * * *", workflow: pipeline, action: nightly}
""",
        registry,
    )
    text = "\n".join(lines)
    assert "jobs[0].cron: invalid cron expression" in text
    assert "jobs[1]: give exactly one of cron or interval" in text


def test_unknown_step_type_and_workflow_kind(registry: Registry) -> None:
    lines = errors(
        """
workflows:
  htp: {}
pipelines:
  p:
    steps:
      - type: respnd
""",
        registry,
    )
    text = "\n".join(lines)
    assert "workflows.htp: unknown field 'htp'; did you mean 'http'?" in text
    assert "pipelines.p.steps[0].type: unknown step type 'respnd'; did you mean 'respond'?" in text


def test_env_expansion_defaults_and_missing(registry: Registry) -> None:
    text = "pipelines:\n  p:\n    - type: log\n      message: '${GREETING} ${WHO:-world} $${x}'\n"
    config = parse_config(text, registry=registry, environ={"GREETING": "hi"})
    step = config.pipelines["p"].steps[0]
    assert step.message == "hi world ${x}"  # type: ignore[union-attr]
    (line,) = errors(text, registry, environ={})
    assert "pipelines.p[0].message: environment variable GREETING is not set" in line
    assert line.startswith("wf.yaml:4:16:")


def test_dump_writes_env_references_back_not_secrets(registry: Registry) -> None:
    text = "pipelines:\n  p:\n    - type: log\n      message: '${TOKEN}'\n"
    config = parse_config(text, registry=registry, environ={"TOKEN": "s3cret"})
    dumped = dump_config(config)
    assert "s3cret" not in dumped
    assert "${TOKEN}" in dumped
    again = parse_config(dumped, registry=registry, environ={"TOKEN": "s3cret"})
    assert again == config


def test_dump_round_trip_keeps_everything(registry: Registry) -> None:
    text = """
modules:
  - {name: a, type: test.thing, config: {schedule: "0 * * * *"}}
  - {name: b, type: test.broker}
pipelines:
  p:
    description: demo
    steps:
      - {type: set, values: {x: "{{ data.x }}"}, if: "data.x", timeout: 1m30s}
      - {type: respond, status: 201, body: {x: "{{ vars.x }}"}}
workflows:
  messaging:
    subscriptions: [{topic: t, handler: p}]
    producers: [{name: p, forwardTo: [u, v]}]
triggers:
  schedule:
    jobs: [{interval: 500ms, workflow: pipeline, action: p}]
"""
    config = parse_config(text, registry=registry)
    dumped = dump_config(config)
    assert "1m30s" in dumped and "500ms" in dumped
    assert parse_config(dumped, registry=registry) == config
    as_dict = config.model_dump(by_alias=True, exclude_unset=True)
    assert config_from_dict(as_dict, registry=registry) == config


def test_imports_merge_and_report_per_file(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "infra.yaml").write_text(
        "modules:\n  - {name: bus, type: test.broker}\npipelines:\n  p: [{type: log, message: x}]\n"
    )
    (tmp_path / "main.yaml").write_text(
        "imports: [shared/infra.yaml]\nmodules:\n  - {name: a, type: test.thing}\n"
        "workflows:\n  messaging:\n    subscriptions: [{topic: t, handler: p}]\n"
    )
    config = load_config(tmp_path / "main.yaml", registry=registry)
    assert [m.name for m in config.modules] == ["bus", "a"]
    assert "p" in config.pipelines
    assert config.source is not None
    bus = config.source.locate(("modules", 0, "name"))
    assert bus.file.endswith("infra.yaml") and bus.line == 2
    (tmp_path / "shared" / "infra.yaml").write_text("modules:\n  - {name: bus, type: test.brokr}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "main.yaml", registry=registry)
    assert any(d.file.endswith("infra.yaml") and d.line == 2 for d in info.value.diagnostics)


def test_import_cycle_and_missing_import(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "a.yaml").write_text("imports: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("imports: [a.yaml, missing.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "a.yaml", registry=registry)
    text = str(info.value)
    assert "import cycle: a.yaml -> b.yaml -> a.yaml" in text
    assert "imported file 'missing.yaml' does not exist" in text


def test_import_conflict_is_an_error(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "a.yaml").write_text("pipelines:\n  p: [{type: log, message: a}]\n")
    (tmp_path / "main.yaml").write_text(
        "imports: [a.yaml]\npipelines:\n  p: [{type: log, message: b}]\n"
    )
    with pytest.raises(ConfigError, match=r"pipelines\.p is defined in more than one file"):
        load_config(tmp_path / "main.yaml", registry=registry)


def test_missing_file_and_non_mapping(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "nope.yaml", registry=registry)
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="a config file must be a mapping"):
        load_config(tmp_path / "list.yaml", registry=registry)


def test_empty_file_is_an_empty_config(registry: Registry) -> None:
    config = parse_config("", registry=registry)
    assert config.modules == [] and config.pipelines == {}


def test_layout_block_and_sidecar_file(tmp_path: Path, registry: Registry) -> None:
    text = "pipelines:\n  p: [{type: log, message: x}]\n"
    inline = parse_config(text + "layout:\n  pipeline:p: {x: 10, y: 20}\n", registry=registry)
    assert inline.layout["pipeline:p"].x == 10
    assert parse_config(dump_config(inline), registry=registry) == inline
    (tmp_path / "wf.yaml").write_text(text)
    (tmp_path / "wf.layout.yaml").write_text("pipeline:p: {x: 1, y: 2}\n")
    loaded = load_config(tmp_path / "wf.yaml", registry=registry)
    assert loaded.layout["pipeline:p"].y == 2
    (tmp_path / "wf.layout.yaml").write_text("pipeline:p: {x: 1}\n")
    with pytest.raises(ConfigError, match=r"wf.layout.yaml:1:13: layout.pipeline:p.y: missing"):
        load_config(tmp_path / "wf.yaml", registry=registry)
