"""Signals sent by the accounts app, and the receivers that put sign-in events in the audit trail.

`login_locked_out` is sent by the sign-in throttle with `username` and `request` when it starts
refusing a username.

`database_restored` is sent by the restore command with `using`, the alias of the database it has
just restored, before the restored database is used: what happened after the backup was made and
must not be undone by it (erasures) is applied again there.
"""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import Signal, receiver

from accounts import audit

login_locked_out = Signal()
database_restored = Signal()


@receiver(user_logged_in, dispatch_uid="audit_login")
def record_login(sender, request, user, **kwargs):
    audit.record(audit.Action.LOGIN, target=user, actor=user, request=request)


@receiver(user_logged_out, dispatch_uid="audit_logout")
def record_logout(sender, request, user, **kwargs):
    # `user` is None when the session had already expired: nobody was signed in to sign out.
    if user is not None:
        audit.record(audit.Action.LOGOUT, target=user, actor=user, request=request)


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def record_login_failed(sender, credentials, request=None, **kwargs):
    # Django has already replaced the password in `credentials` with stars; only the name the
    # person typed is kept, and no actor: nobody is signed in.
    username = str(credentials.get("username", ""))[:150]
    audit.record(audit.Action.LOGIN_FAILED, data={"username": username}, request=request)


@receiver(login_locked_out, dispatch_uid="audit_lockout")
def record_lockout(sender, username, request=None, **kwargs):
    audit.record(audit.Action.LOCKOUT, data={"username": str(username)[:150]}, request=request)
