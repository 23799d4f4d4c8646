"""``DBSwapMiddleware``: which target serves a request, and which login it sees there.

The one decision per request, read by the session pinning and the identity
check alike:

- when the request begins, it is pinned to the active target, and (logins bound
  to their target) its session is that target's cookie (see ``_cookies``);
- once the view is known (``process_view``): dbswap's control-plane views use
  the control target's session; a previewing admin's request is pinned to the
  preview's target (the admin identified on the control target's session, as
  dbswap's views do) and gets that preview's own session; then a session stamped
  with another target than the request's is flushed, and a visitor whose only
  login is on another target is told why they are anonymous;
- a ``ReadOnlyTarget`` raised by the view is a 409 (``_refusals``), never a 500;
- the response's session cookie goes out under the name of its target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from .._errors import ReadOnlyTarget
from . import _cookies
from ._board import get_board
from ._identity import drop_foreign_login
from ._refusals import read_only_response
from ._routing import _pin, active_pin, control_target, current_pin


class DBSwapMiddleware:
    """Pins each request, for its whole duration, to the target active when it began.

    Put it first in ``MIDDLEWARE`` so sessions and authentication are pinned too.
    Works under WSGI and ASGI, with sync and async views.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        from django.apps import apps

        if not apps.is_installed("dbswap.django"):
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                "add 'dbswap.django' to INSTALLED_APPS: it installs the read-only and "
                "routing guards on every database connection"
            )
        self.get_response = get_response
        get_board().follow()  # this process serves from the state: it is counted, and follows
        self._async = iscoroutinefunction(get_response)
        from . import _preview  # admins' own previews (it needs Django set up)

        self._previews = _preview
        if self._async:
            markcoroutinefunction(self)

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        # Before any view reads request.user.
        if getattr(view, "dbswap_control_plane", False):
            _cookies.use(request, control_target())  # its views refuse other logins themselves
            return
        preview = self._previews.apply_preview(request)  # may re-pin the request
        target = current_pin().target
        _cookies.use(request, target, until=preview.expires if preview is not None else None)
        drop_foreign_login(request, target)
        if preview is None:
            _cookies.tell_moved(request, target)

    def process_exception(self, request: Any, exception: Exception) -> Any:
        if isinstance(exception, ReadOnlyTarget):
            previewing = self._previews.current_preview(request) is not None
            return read_only_response(request, exception.target, previewing=previewing)
        return None

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self.__acall__(request)
        pin = active_pin()
        token = _pin.set(pin)
        try:
            _cookies.begin(request, pin.target)
            return self._finish(request, self.get_response(request))
        finally:
            _pin.reset(token)

    async def __acall__(self, request: Any) -> Any:
        pin = active_pin()
        token = _pin.set(pin)
        try:
            _cookies.begin(request, pin.target)
            return self._finish(request, await self.get_response(request))
        finally:
            _pin.reset(token)

    def _finish(self, request: Any, response: Any) -> Any:
        return _cookies.finish(request, self._previews.finish(request, response))
