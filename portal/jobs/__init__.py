"""The job engine: a Job row is the truth, Celery only moves it forward.

A job kind is a `Kind` class: its typed `Params` and `State` (dataclasses, kept
in the row's JSON fields and checked on load), and its ordered steps, each
naming its own undo (a saga). A step is a function of a `StepContext` (params,
state, site, actor, project, `checkpoint()`) that either finishes (returns
None, `Done` or `Skipped`), asks to be called again (returns `Wait`), or fails
(raises `StepFailed`, or a cloud error). Steps keep what they made in their
state, so running one twice finds its own work instead of doing it again:
duplicate deliveries and worker crashes are harmless. The engine alone writes
the job's status, error and result: a step says what it has to say in what it
returns (`Done(detail, result=...)`), and a kind's `error_headline(state)` is
kept as the error's first line.

When a forward step fails, the job records the error, appends the undo of each
step that ran (the failed one too: it may have done part of its work; not a
skipped one), the latest first, and turns "cleaning up". Undo steps are ordinary
steps: they may wait, they are idempotent, and a crash resumes them, not the
failed step. "Failed" is written only when the last undo step has ended, so
whoever sees "failed" also sees what the cleanup did. A failing undo step is
recorded and the next one still runs.

A whole kind, in an app's jobs.py (imported by its AppConfig.ready); the gateway
has no `server_reboot` yet, it stands for any call:

    @dataclass
    class RebootParams:
        hard: bool = False

    @dataclass
    class RebootState:
        asked: bool = False

    def step_reboot(ctx: StepContext) -> Done:
        ctx.state.asked = True
        ctx.checkpoint()  # saved before the request: a re-run knows it may have gone
        cloud.server_reboot(ctx.site.name, server_id=ctx.target_server_id, hard=ctx.params.hard)
        return Done("reboot asked", result={"rebooted": True})

    def undo_reboot(ctx: StepContext) -> Skipped:
        return Skipped("a reboot needs no undo")

    class ServerReboot(Kind):
        name = "server.reboot"  # the only place the name is written
        Params = RebootParams
        State = RebootState
        steps = (Step("reboot", "Reboot requested", step_reboot, undo=Step(
            "undo_reboot", "Nothing to undo", undo_reboot)),)

        @classmethod
        def title(cls, params: RebootParams) -> str:
            return "Reboot instance"

    # a service: ServerReboot.create(actor=user, project=server.project, site=server.site,
    #     target_server_id=server.openstack_id, params=ServerReboot.Params(hard=True))

Waiting never blocks a worker: `job_advance` returns a countdown and the task
re-schedules itself. No step does unbounded work in one run: a step that did a
batch returns `Wait(more=True)` to be called again at once, and Celery's soft
time limit means "continue later", never an error. A wait fails only when the
cloud has shown no progress (`Wait.observed` unchanged) for
JOB_NO_PROGRESS_SECONDS, so a 500 GB upload that advances is never cut short.

Each scheduled message carries the job's current `wake` token; a message whose
token is stale (a duplicate, or one overtaken by a newer schedule) is dropped,
so a job never grows two polling chains. A worker holds a job under a short
lease; a job whose lease ran out and whose next run is overdue (its worker
died) is handed to a worker again by `jobs_recover_stuck` within seconds.

The package, one concern per module, each importing only those listed before it:
selectors (reads about jobs), markers (job_key, made_by_job), sending (the
messages that move jobs, several to one when many go at once), kinds (the kind API and recording a job), outages
(silent sites, leases), parking (parked jobs and the changes that wake them),
advance (job_advance), sweep (recovery, wake-ups).
Import the engine from here: `from portal.jobs import Kind, Step, Wait`.
"""

from portal.jobs.advance import (
    batch_reads_register,
    job_advance,
    jobs_claim,
    jobs_preload,
    jobs_unclaim,
    undo_details,
)
from portal.jobs.kinds import (
    SKIPPED,
    BadJobData,
    Done,
    Kind,
    Skipped,
    Step,
    StepContext,
    StepFailed,
    Wait,
    job_create,
    job_kind_get,
    jobs_create,
    step_run_once,
)
from portal.jobs.markers import JOB_KEY, job_key, made_by_job
from portal.jobs.outages import (
    lease_kept,
    silence_watched,
    site_answers,
    site_silent,
    sites_to_probe,
)
from portal.jobs.parking import park_check, park_checks_batched, parked_wake, watched_register
from portal.jobs.selectors import UNFINISHED, busy_pks, job_repeated
from portal.jobs.sending import ADVANCE_TASK
from portal.jobs.sweep import jobs_recover_stuck

__all__ = [
    "ADVANCE_TASK",
    "JOB_KEY",
    "SKIPPED",
    "UNFINISHED",
    "BadJobData",
    "Done",
    "Kind",
    "Skipped",
    "Step",
    "StepContext",
    "StepFailed",
    "Wait",
    "batch_reads_register",
    "busy_pks",
    "job_advance",
    "job_create",
    "job_key",
    "job_kind_get",
    "job_repeated",
    "jobs_claim",
    "jobs_create",
    "jobs_preload",
    "jobs_recover_stuck",
    "jobs_unclaim",
    "lease_kept",
    "made_by_job",
    "park_check",
    "park_checks_batched",
    "parked_wake",
    "silence_watched",
    "site_answers",
    "site_silent",
    "sites_to_probe",
    "step_run_once",
    "undo_details",
    "watched_register",
]
