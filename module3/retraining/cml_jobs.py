"""The CML job chain: four jobs, each started when its parent's run succeeds.

``setup_jobs`` creates the jobs or updates them in place, found by name, so
running it twice leaves one chain. Job 1 runs on a cron schedule, jobs 2 to 4
have a parent instead (CML allows only one of the two). Every job gets
``LOOP_CHAIN_MODE=1``, merged into the environment it already has, so each
script exits 0 when it has nothing to do and the chain goes on.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from typing import Any

from retraining.cml_client import CmlClient, create_client, resolve_runtime, setting
from retraining.errors import InvalidInputError

log = logging.getLogger(__name__)

DEFAULT_SCHEDULE = "0 6 * * *"
CHAIN_ENVIRONMENT = {"LOOP_CHAIN_MODE": "1"}


@dataclass(frozen=True)
class JobSpec:
    """One job of the chain: its number, base name, script and parent's number."""

    number: int
    name: str
    script: str
    parent: int | None


JOB_SPECS = (
    JobSpec(1, "1 Check drift", "module3/1_check_drift.py", None),
    JobSpec(2, "2 Acquire labels", "module3/2_simulate_labeling_job.py", 1),
    JobSpec(3, "3 Retrain model", "module3/3_retrain_model.py", 2),
    JobSpec(4, "4 Register and deploy", "module3/4_register_and_deploy.py", 3),
)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of setup_cml_jobs.py besides the connection flags."""
    parser.add_argument(
        "--schedule",
        help=f"cron schedule of the first job (env LOOP_CML_JOB_SCHEDULE; default "
        f"'{DEFAULT_SCHEDULE}', daily at 06:00)",
    )
    parser.add_argument(
        "--job-name-prefix",
        help="text put before every job name, e.g. 'loop: ' (env LOOP_CML_JOB_PREFIX; "
        "default none)",
    )
    parser.add_argument(
        "--job-arguments",
        nargs=2,
        action="append",
        metavar=("JOB_NUMBER", "ARGUMENTS"),
        help="arguments for job 1 to 4, passed by CML in JOB_ARGUMENTS, e.g. "
        "--job-arguments 4 '--target cml'; repeat for several jobs",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be created or changed and change nothing",
    )


@dataclass(frozen=True)
class JobOptions:
    """The settings shared by all jobs of the chain."""

    prefix: str
    schedule: str
    runtime: str
    cpu: float
    memory: float
    arguments: dict[int, str]
    dry_run: bool


def resolve_job_options(args: argparse.Namespace, client: CmlClient) -> JobOptions:
    arguments: dict[int, str] = {}
    for number, text in args.job_arguments or []:
        if number not in {str(spec.number) for spec in JOB_SPECS}:
            raise InvalidInputError(
                f"--job-arguments {number!r}: expected a job number from 1 to 4"
            )
        arguments[int(number)] = text
    schedule = setting(args.schedule, "LOOP_CML_JOB_SCHEDULE", DEFAULT_SCHEDULE, str)
    if len(schedule.split()) != 5:
        raise InvalidInputError(
            f"--schedule {schedule!r} is not a cron expression with 5 fields, e.g. "
            f"'{DEFAULT_SCHEDULE}'"
        )
    return JobOptions(
        prefix=setting(args.job_name_prefix, "LOOP_CML_JOB_PREFIX", "", str),
        schedule=schedule,
        runtime=resolve_runtime(client),
        cpu=client.settings.cpu,
        memory=client.settings.memory,
        arguments=arguments,
        dry_run=args.dry_run,
    )


def find_job(client: CmlClient, name: str) -> Any | None:
    found = client.list_all(
        "list_jobs", "jobs", client.project_id, search_filter=json.dumps({"name": name})
    )
    exact = [job for job in found if job.name == name]
    exact.sort(key=lambda job: job.created_at or "")
    if len(exact) > 1:
        log.warning(
            "%d jobs are named %r; updating the oldest, %s",
            len(exact),
            name,
            exact[0].id,
        )
    return exact[0] if exact else None


def parse_environment(text: Any) -> dict[str, str]:
    if isinstance(text, dict):
        return dict(text)
    try:
        parsed = json.loads(text or "{}")
    except json.JSONDecodeError:
        log.warning("job environment %r is not JSON; replacing it", text)
        return {}
    return parsed if isinstance(parsed, dict) else {}


def job_changes(
    job: Any, spec: JobSpec, options: JobOptions, parent_id: str
) -> dict[str, Any]:
    """Return the fields of ``job`` that differ from the expected ones."""
    # NOTE: that an empty string clears a job's schedule or parent in update_job
    # is an assumption; CML documents neither value.
    expected: dict[str, Any] = {
        "schedule": options.schedule if spec.parent is None else "",
        "parent_id": parent_id,
    }
    changes = {
        key: value
        for key, value in expected.items()
        if (getattr(job, key) or "") != value
    }
    for key in ("cpu", "memory"):
        if float(getattr(job, key) or 0) != float(getattr(options, key)):
            changes[key] = getattr(options, key)
    environment = parse_environment(job.environment)
    merged = {**environment, **CHAIN_ENVIRONMENT}
    if merged != environment:
        # NOTE: sent as a JSON string because a Job returns its environment so.
        changes["environment"] = json.dumps(merged)
    arguments = options.arguments.get(spec.number)
    if arguments is not None and (job.arguments or "") != arguments:
        changes["arguments"] = arguments
    if job.script != spec.script:
        log.warning(
            "job %r runs %s, not %s; update_job cannot change the script: delete the "
            "job in CML and rerun this command to recreate it",
            job.name,
            job.script,
            spec.script,
        )
    return changes


def create_job(
    client: CmlClient, spec: JobSpec, name: str, options: JobOptions, parent_id: str
) -> Any:
    import cmlapi

    request = cmlapi.CreateJobRequest(
        project_id=client.project_id,
        name=name,
        script=spec.script,
        runtime_identifier=options.runtime,
        cpu=options.cpu,
        memory=options.memory,
        parent_job_id=parent_id or None,
        schedule=options.schedule if spec.parent is None else None,
        environment=dict(CHAIN_ENVIRONMENT),
        arguments=options.arguments.get(spec.number),
    )
    return client.call(
        "create_job", request, client.project_id, recover=lambda: find_job(client, name)
    )


def setup_jobs(args: argparse.Namespace) -> int:
    """Create or update the four jobs of the chain; return 0."""
    client = create_client(args)
    options = resolve_job_options(args, client)
    ids: dict[int, str] = {}
    counts = {"create": 0, "update": 0, "unchanged": 0}
    prefix = "would " if options.dry_run else ""
    for spec in JOB_SPECS:
        name = f"{options.prefix}{spec.name}"
        parent_id = ids[spec.parent] if spec.parent else ""
        job = find_job(client, name)
        if job is None:
            counts["create"] += 1
            if spec.parent:
                link = f"parent {parent_id}"
            else:
                link = f"schedule '{options.schedule}'"
            print(f"{prefix}create job {name!r}: {spec.script}, {link}")
            if options.dry_run:
                ids[spec.number] = "(new)"
            else:
                ids[spec.number] = create_job(client, spec, name, options, parent_id).id
            continue
        ids[spec.number] = job.id
        changes = job_changes(job, spec, options, parent_id)
        if not changes:
            counts["unchanged"] += 1
            print(f"job {name!r} ({job.id}) is up to date")
            continue
        counts["update"] += 1
        print(f"{prefix}update job {name!r} ({job.id}): {', '.join(sorted(changes))}")
        if not options.dry_run:
            client.call("update_job", changes, client.project_id, job.id)
    print(
        f"{prefix}create {counts['create']}, update {counts['update']}, "
        f"{counts['unchanged']} unchanged; runtime {options.runtime}"
        + (" (dry run: nothing changed)" if options.dry_run else "")
    )
    return 0
