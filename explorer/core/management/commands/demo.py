"""`python manage.py demo`: the whole stack on one machine, stopped by Ctrl-C.

manage.py has already started (or reused) the embedded PostgreSQL and Redis when
DATABASE_URL / REDIS_URL were unset (explorer/core/embedded.py) and exported their URLs; this
command checks the set-up, migrates, collects static files, then supervises the Celery workers
and uvicorn (explorer/core/supervisor.py), which inherit the URLs by environment. A child that
dies is started again after a back-off (logged here); one that keeps dying stops everything.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from explorer.core import embedded, tasks
from explorer.core.checks import first_line
from explorer.core.static import collectstatic_if_stale
from explorer.core.supervisor import (
    Child,
    ChildFailed,
    RestartPolicy,
    Supervisor,
    celery_worker_argv,
    describe_exit,
    web_server_argv,
)
from explorer.core.tasks import BATCH_QUEUES, live_queue
from explorer.saes.selectors import sae_find
from explorer.saes.services import DEMO_SPEC, sae_registration_plan

DEMO_INDEX_TOKENS = 200_000  # ~20 s of the demo model on 2 CPU cores
# Every child is restarted when it dies: 1 s, then 2, 4, ... 30 s while it dies within a minute
# of its start; five such deaths in a row mean it cannot run here, and the demo stops.
RESTART = RestartPolicy(first=1.0, most=30.0, stable=60.0, give_up=5)


def register_demo_sae_if_needed(stdout, tokens: int = DEMO_INDEX_TOKENS) -> None:
    """First-start hook: register the committed demo model + SAE and queue its indexing.

    A no-op when the demo SAE is indexed and evaluated; `tokens` 0 registers only. An index
    run left unfinished by an earlier start (stopped mid-run) is resumed rather than started
    again. Finishing the index queues the SAE's evaluation (workers/index.py); an SAE indexed
    before evaluations existed, or whose evaluation never finished, gets one queued here.
    """
    from explorer.saes import evaluations, indexing
    from explorer.saes.models import Feature, IndexRun, SAEEvaluation
    from explorer.showcases import services as showcase_services
    from explorer.showcases.models import SteeringShowcase

    plan = sae_registration_plan(model_spec=DEMO_SPEC, sae_spec=DEMO_SPEC)
    sae = plan.existing
    if sae is None:
        # add_sae loads the model and SAE in this process (worker side: it needs torch).
        call_command("add_sae", model=DEMO_SPEC, sae=DEMO_SPEC, stdout=io.StringIO())
        sae = sae_find(model_source=plan.model_source, sae_source=plan.sae_source)
        stdout.write(f"Registered the demo model and SAE ({sae.model.slug}/{sae.slug}).")
    if tokens <= 0:
        return
    if Feature.objects.filter(sae=sae).exists():
        if not SAEEvaluation.objects.filter(
            sae=sae, status__in=[SAEEvaluation.Status.DONE, SAEEvaluation.Status.RUNNING]
        ).exists():
            SAEEvaluation.objects.filter(sae=sae, status=SAEEvaluation.Status.QUEUED).delete()
            evaluations.evaluation_request(sae=sae)
            stdout.write("Evaluating the demo SAE on held-out text in the background.")
        # Indexed before showcases existed (indexing computes them): compute them once.
        if settings.SHOWCASE_CANDIDATES and not SteeringShowcase.objects.filter(sae=sae).exists():
            showcase_services.showcases_schedule(sae_id=sae.pk)
            stdout.write("Computing the home page's steering showcases in the background.")
        return
    unfinished = IndexRun.objects.filter(
        sae=sae,
        status__in=[IndexRun.Status.QUEUED, IndexRun.Status.RUNNING, IndexRun.Status.FAILED],
    ).first()
    if unfinished is not None:
        indexing.index_run_resume(run=unfinished)
        run = unfinished
    else:
        run = indexing.index_run_create(sae=sae, corpus="demo", tokens=tokens)
        indexing.index_run_dispatch(run=run)
    stdout.write(
        f"Indexing the demo SAE over {run.tokens:,} tokens in the background "
        f"(run {run.pk}); its page shows the progress."
    )


class Command(BaseCommand):
    help = "Run the explorer locally: PostgreSQL, Redis, a Celery worker and the ASGI server."
    requires_system_checks = ()  # we run them ourselves, after the servers are up

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1)"
        )
        parser.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")
        parser.add_argument(
            "--allow-missing-frontend",
            action="store_true",
            help=(
                "start without a frontend build: the API and /healthz work, "
                "pages fail until it is built"
            ),
        )
        parser.add_argument(
            "--index-tokens",
            type=int,
            default=DEMO_INDEX_TOKENS,
            help=f"tokens to index the demo SAE over on first start "
            f"(default {DEMO_INDEX_TOKENS:,}; 0: do not index)",
        )
        parser.add_argument(
            "--stop-timeout", type=float, default=10.0, help="seconds before SIGKILL"
        )

    def handle(self, *args, **options) -> None:
        host, port = options["host"], options["port"]
        self._check_port_free(host, port)
        self._check_database()
        if not options["allow_missing_frontend"]:
            self._check_frontend()
        supervisor = Supervisor()
        stopping = False

        def on_stop_signal(signum, frame) -> None:
            raise KeyboardInterrupt

        # Installed explicitly: a shell starts background jobs with SIGINT ignored, and a
        # closed terminal sends SIGHUP; each must still stop the children.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_stop_signal)
        log_dir = embedded.var_dir() / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        try:
            env = self._child_env()
            # The worker boots (seconds) while we migrate; nothing enqueues before the web is up.
            if not options["no_worker"]:
                self._start_workers(supervisor, env, log_dir)
            # migrate runs the system checks first, database ones included (explorer.W002).
            call_command("migrate", interactive=False, verbosity=0, skip_checks=False)
            collectstatic_if_stale()
            register_demo_sae_if_needed(self.stdout, options["index_tokens"])
            if not options["no_worker"]:
                # The live worker warmed up at start, before a first start registered the SAE.
                for model in settings.EXPLORER_LIVE_MODELS:
                    tasks.send(tasks.WARM_UP, queue=live_queue(model), args=(model,))
            self._start_web(supervisor, env, host, port, want_ok=not options["no_worker"])
            self._wait_for_an_exit(supervisor)
        except KeyboardInterrupt:
            stopping = True
        finally:
            # A second Ctrl-C must not interrupt the clean-up half-way.
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            self._say("Stopping...")
            supervisor.stop_all(options["stop_timeout"])
            embedded.release_all()
            if stopping:
                self._say("Stopped.")

    def _start_workers(self, supervisor: Supervisor, env: dict[str, str], log_dir: Path) -> None:
        """Two workers: live queues must never wait behind an indexing job (DESIGN.md §7)."""
        live = ",".join(live_queue(m) for m in settings.EXPLORER_LIVE_MODELS)
        for name, queues in (("worker", live), ("batch-worker", ",".join(BATCH_QUEUES))):
            if not queues:
                continue
            worker_log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the child
            supervisor.start(
                Child(
                    name,
                    celery_worker_argv(
                        queues=queues, name=f"demo-{name}@%h", extra=("--loglevel", "INFO")
                    ),
                    env,
                    restart=RESTART,
                ),
                log=worker_log,
            )
            self.stdout.write(f"{name}: queues {queues} (log: {log_dir / f'{name}.log'})")

    def _start_web(
        self, supervisor: Supervisor, env: dict[str, str], host: str, port: int, *, want_ok: bool
    ) -> None:
        """Start uvicorn and say where it listens once /healthz answers (200 if `want_ok`)."""
        web = supervisor.start(
            Child(
                "web",
                web_server_argv(host=host, port=port),
                env,
                restart=RESTART,
            )
        )
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
        if not self._wait_http(url + "healthz", web, supervisor, want_ok=want_ok):
            self.stderr.write(f"warning: {url}healthz is not 200 yet (worker still starting?)")
        self.stdout.write(self.style.SUCCESS(f"SAE Feature Explorer is running at {url}"))
        self.stdout.write(f"pids: {' '.join(f'{c.name}={c.pid}' for c in supervisor.children)}")
        self.stdout.write("Press Ctrl-C to stop.")
        self.stdout.flush()

    def _wait_for_an_exit(self, supervisor: Supervisor) -> None:
        """Restart children that die until Ctrl-C (KeyboardInterrupt) or one that cannot stay
        up (CommandError)."""
        while True:
            self._tend(supervisor)
            time.sleep(0.5)

    def _tend(self, supervisor: Supervisor) -> None:
        try:
            supervisor.tend(self._say)
        except ChildFailed as exc:
            raise CommandError(str(exc)) from None

    def _say(self, message: str) -> None:
        """Write during shutdown; a closed terminal (broken pipe) must not skip the clean-up."""
        try:
            self.stdout.write(message)
            self.stdout.flush()
        except OSError:
            pass

    # --- checks with clear messages ------------------------------------------------------------

    def _check_port_free(self, host: str, port: int) -> None:
        import socket

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise CommandError(
                    f"Port {port} on {host} is in use ({exc.strerror}). "
                    "Stop what uses it or pass --port."
                ) from None

    def _check_database(self) -> None:
        from django.db import connection

        try:
            connection.ensure_connection()
        except Exception as exc:  # noqa: BLE001 - any failure is reported the same way
            raise CommandError(
                f"Cannot reach the database {settings.DATABASES['default']['NAME']!r} "
                f"(DATABASE_URL): {first_line(exc)}. "
                "Check the URL, or unset DATABASE_URL to use the embedded server."
            ) from None

    def _check_frontend(self) -> None:
        manifest = Path(settings.FRONTEND_DIST) / ".vite" / "manifest.json"
        if manifest.exists():
            return
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise CommandError(
                "The frontend is not built and npm/node are missing: install Node.js 20+ "
                "(apt-get install -y nodejs npm), then run `make install`."
            )
        raise CommandError(
            f"The frontend is not built ({manifest} is missing): run `make install` "
            "(or `cd frontend && npm ci && npm run build`)."
        )

    # --- children ---------------------------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Children use exactly the servers we checked; they never start embedded ones.
        env["DATABASE_URL"] = settings.DATABASE_URL
        env["REDIS_URL"] = settings.REDIS_URL
        env.setdefault("HTTPS", "false")
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def _wait_http(
        self, url: str, web: Child, supervisor: Supervisor, *, want_ok: bool, timeout: float = 90.0
    ) -> bool:
        """Wait for the web server to answer `url` (with 200 if `want_ok`); False on timeout
        after it answered something. Raises CommandError if a child dies or nothing answers."""
        answered = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = web.exited()
            if code is not None:
                raise CommandError(f"{web.name} {describe_exit(code)} during start-up.")
            self._tend(supervisor)  # a worker that dies meanwhile is restarted
            try:
                urllib.request.urlopen(url, timeout=5).close()
                return True
            except urllib.error.HTTPError:
                answered = True  # the server is up; 503 means the worker is not ready yet
                if not want_ok:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        if answered:
            return False
        raise CommandError(f"The web server did not answer on {url} within {timeout:.0f}s.")
