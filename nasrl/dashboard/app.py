"""The dashboard's web app (Starlette): HTML pages that draw themselves from a small JSON API,
every answer read from the controller's RPCs (``source.ReadOnlyController``). Only GET routes
exist: nothing a page does can change a search.

    GET /                                   every search
    GET /searches/{id}                      one search (404 page for an unknown id)
    GET /trainers                           the --trainers (health, datasets)
    GET /api/searches[/{id}]                JSON behind those pages
    GET /api/searches/{id}/children?after=N trained children as columns, from candidate N on
    GET /api/searches/{id}/curves?after=N   learning curves and decisions of up to 100 children
    GET /api/searches/{id}/children/{cid}   one child: result, curve, graph (SVG), downloads
    GET /searches/{id}/children/{cid}/model.zip|onnx   its trained model, from a trainer
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from nasrl.core.arch import ArchError
from nasrl.dashboard import views
from nasrl.dashboard.graph import architecture_svg
from nasrl.dashboard.source import ChildCache, ReadOnlyController
from nasrl.dashboard.trainers import FORMATS, NoWeights, Trainers, search_image
from nasrl.rpc.client import Child, NasrlError, Search
from nasrl.rpc.security import ClientSecurity

__all__ = ["DashboardConfig", "create_app", "Dashboard"]

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
LEADERBOARD_TOP = 100
CURVES = 100  # ListChildren's largest page with detail
#: no script, style, font or image from anywhere but the dashboard itself (no CDN, offline)
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@dataclass(frozen=True)
class DashboardConfig:
    controller: str
    trainers: str = ""  # HOST:PORT[,...] or dns:///NAME:PORT; "" = no trainers page
    refresh: float = 2.0  # seconds between a page's polls
    timeout: float = 10.0  # deadline of each controller call
    security: ClientSecurity | None = None


class Dashboard:
    """The app's state: the controller it reads, the children cache, the trainers."""

    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self.controller = ReadOnlyController(config.controller, config.timeout, config.security)
        self.cache = ChildCache(self.controller, max_age=min(1.0, config.refresh / 2))
        self.trainers = Trainers(config.trainers, config.security) if config.trainers else None

    def warm(self) -> None:
        """Read every search's children once, so that the first page shown is as quick as
        the next ones (a search of 10,000 children takes the controller about a second);
        a controller that is down is left to the pages' banner."""
        try:
            for s in self.controller.searches():
                self.cache.children(s.search_id)
        except NasrlError as exc:
            log.info("not warmed up: %s", exc)

    def close(self) -> None:
        self.controller.close()


def _error(exc: NasrlError, controller: str) -> JSONResponse:
    if exc.code == grpc.StatusCode.NOT_FOUND:
        return JSONResponse({"error": exc.args[0]}, status_code=404)
    if exc.code == grpc.StatusCode.INVALID_ARGUMENT:
        return JSONResponse({"error": exc.args[0]}, status_code=400)
    return JSONResponse(
        {"error": f"the controller at {controller} does not answer: {exc}", "down": True},
        status_code=503,
    )


def _int(request: Request, name: str) -> int:
    raw = request.query_params.get(name, "0")
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a whole number of 0 or more, got {raw[:40]!r}")
    return value


class _Pages:
    """The route handlers (plain functions run on Starlette's thread pool: the gRPC client is
    synchronous)."""

    def __init__(self, dash: Dashboard, templates: Jinja2Templates) -> None:
        self.dash = dash
        self.templates = templates

    def _page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        context |= {
            "controller": self.dash.config.controller,
            "has_trainers": self.dash.trainers is not None,
            "refresh_ms": int(self.dash.config.refresh * 1000),
        }
        return self.templates.TemplateResponse(request, name, context, status_code=status)

    # ---------------------------------------------------------------- pages

    def searches_page(self, request: Request) -> Response:
        return self._page(request, "searches.html", page="searches")

    def search_page(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        try:
            search = self.dash.controller.search(sid)
        except NasrlError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return self._not_found(
                    request,
                    f"There is no search with id {sid!r} on this "
                    "controller. The searches page lists every search.",
                )
            # the controller is down: the page comes up with the banner and fills in later
            return self._page(
                request, "search.html", page="search", sid=sid, title=sid, down=str(exc)
            )
        return self._page(
            request, "search.html", page="search", sid=sid, title=search.name or sid, down=""
        )

    def trainers_page(self, request: Request) -> Response:
        if self.dash.trainers is None:
            return self._not_found(
                request,
                "This dashboard was started without --trainers, so it has no trainers to "
                "show; start it with nasrl dashboard --trainers HOST:PORT[,...].",
            )
        return self._page(request, "trainers.html", page="trainers")

    def _not_found(self, request: Request, sentence: str) -> Response:
        return self._page(
            request, "not_found.html", status=404, page="not-found", sentence=sentence
        )

    # ---------------------------------------------------------------- API

    def api_searches(self, request: Request) -> Response:
        try:
            rows = []
            for s in self.dash.controller.searches():
                children = self.dash.cache.children(s.search_id).all()
                rows.append(views.search_row(s, views.trainer_seconds(children)))
        except NasrlError as exc:
            return _error(exc, self.dash.config.controller)
        return JSONResponse({"searches": rows})

    def api_search(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        try:
            search = self.dash.controller.search(sid)
            children = self.dash.cache.children(sid).all()
            board = self.dash.controller.leaderboard(sid, LEADERBOARD_TOP)
        except NasrlError as exc:
            return _error(exc, self.dash.config.controller)
        summary = views.search_summary(search, children, board, {})
        summary["downloads"] = self.dash.trainers is not None
        summary["last_id"] = children[-1].candidate_id if children else 0
        return JSONResponse(summary)

    def api_children(self, request: Request) -> Response:
        """Trained children after candidate ``after`` as columns: ``settled`` ones (up to
        ``cursor``: they never change) and the ``tail`` after it (replaced on every poll)."""
        sid = request.path_params["sid"]
        try:
            after = _int(request, "after")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            entry = self.dash.cache.children(sid)
        except NasrlError as exc:
            return _error(exc, self.dash.config.controller)
        with entry.lock:
            settled = (
                [c for c in entry.settled if c.candidate_id > after]
                if after
                else list(entry.settled)
            )
            cursor = max(after, entry.cursor)
            tail = [c for c in entry.tail if c.candidate_id > cursor]
        return JSONResponse(
            {
                "cursor": cursor,
                "settled": views.trained_columns(settled),
                "tail": views.trained_columns(tail),
            }
        )

    def api_curves(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        try:
            after = _int(request, "after")
            children, _ = self.dash.controller.children(sid, after=after, limit=CURVES, detail=True)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except NasrlError as exc:
            return _error(exc, self.dash.config.controller)
        shown = [c for c in children if c.result is not None or c.reports]
        return JSONResponse({"curves": [views.child_curve(c) for c in shown]})

    def _child(self, sid: str, cid: int) -> tuple[Search, Child | None]:
        search = self.dash.controller.search(sid)
        page, _ = self.dash.controller.children(sid, after=cid - 1, limit=1, detail=True)
        return search, (page[0] if page and page[0].candidate_id == cid else None)

    def api_child(self, request: Request) -> Response:
        sid, cid = request.path_params["sid"], request.path_params["cid"]
        try:
            search, child = self._child(sid, cid)
        except NasrlError as exc:
            return _error(exc, self.dash.config.controller)
        if child is None:
            return JSONResponse({"error": f"search {sid} has no child {cid}"}, status_code=404)
        try:
            svg = architecture_svg(child.architecture, search_image(search))
        except (ArchError, ValueError):
            svg = ""
        downloads = {}
        if self.dash.trainers is not None and child.result is not None:
            downloads = {
                fmt: f"/searches/{sid}/children/{cid}/model.{suffix}"
                for fmt, suffix in FORMATS.items()
            }
        return JSONResponse(views.child_detail(child, svg, downloads))

    def api_trainers(self, request: Request) -> Response:
        if self.dash.trainers is None:
            return JSONResponse({"error": "no --trainers given"}, status_code=404)
        try:
            targets = self.dash.trainers.targets()
        except (ValueError, OSError) as exc:
            return JSONResponse({"trainers": [], "error": str(exc)})
        return JSONResponse({"trainers": [self.dash.trainers.status(t) for t in targets]})

    def download(self, request: Request) -> Response:
        sid, cid = request.path_params["sid"], request.path_params["cid"]
        suffix = request.path_params["suffix"]
        fmt = {s: f for f, s in FORMATS.items()}.get(suffix)
        if self.dash.trainers is None or fmt is None:
            return PlainTextResponse("No such download.", status_code=404)
        try:
            search, child = self._child(sid, cid)
            if child is None:
                return PlainTextResponse(f"Search {sid} has no child {cid}.", status_code=404)
            got = self.dash.trainers.export(search, child, fmt)
        except NoWeights as exc:
            return PlainTextResponse(f"{exc}.", status_code=404)
        except NasrlError as exc:
            return _error(exc, self.dash.config.controller)
        return Response(
            got.data,
            media_type=got.media_type,
            headers={"Content-Disposition": f'attachment; filename="{got.filename}"'},
        )


class _Headers(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _lifespan(dash: Dashboard) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=dash.warm, name="dashboard-warm-up", daemon=True).start()
        yield
        dash.close()

    return lifespan


def create_app(config: DashboardConfig) -> Starlette:
    """The dashboard for ``config``; ``app.state.dashboard`` holds its state."""
    dash = Dashboard(config)
    pages = _Pages(dash, Jinja2Templates(directory=str(HERE / "templates")))
    get = ["GET"]
    routes = [
        Route("/", pages.searches_page, methods=get),
        Route("/searches/{sid}", pages.search_page, methods=get),
        Route("/trainers", pages.trainers_page, methods=get),
        Route("/api/searches", pages.api_searches, methods=get),
        Route("/api/searches/{sid}", pages.api_search, methods=get),
        Route("/api/searches/{sid}/children", pages.api_children, methods=get),
        Route("/api/searches/{sid}/curves", pages.api_curves, methods=get),
        Route("/api/searches/{sid}/children/{cid:int}", pages.api_child, methods=get),
        Route("/api/trainers", pages.api_trainers, methods=get),
        Route("/searches/{sid}/children/{cid:int}/model.{suffix}", pages.download, methods=get),
        Route("/healthz", lambda request: PlainTextResponse("ok"), methods=get),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": "no such API route"}, status_code=404)
        return pages._not_found(request, f"There is no page at {request.url.path}.")

    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Headers)],
        exception_handlers={404: not_found},
        lifespan=_lifespan(dash),
    )
    app.state.dashboard = dash
    return app
