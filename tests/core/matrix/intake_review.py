"""Verification of submissions (public) and the review queue of submitted changes."""

import datetime

from django.utils import timezone

from tests.core.matrix import NOT_ALLOWED, OK, PERSONAS, PUBLIC, every, get, post

# Reviewers are those with intake.review_submission; a change to a customer they may not
# change is a 404. The customer is staff's, in the team the manager manages.
REVIEW = every(OK, viewer=403, auditor=403)
DECIDE = every(OK, viewer=403, auditor=403, staff2=404)
NOBODY = dict.fromkeys(PERSONAS, NOT_ALLOWED)

RULES = {
    "intake:verify": {"GET": PUBLIC, "POST": PUBLIC},
    "intake:verify_resend": {"GET": NOBODY, "POST": PUBLIC},
    "intake:verify_link": {"GET": PUBLIC, "POST": NOBODY},
    "intake:review": get(REVIEW),
    "intake:review_change": post(DECIDE),
    "intake:review_submission": post(DECIDE),
}

VERIFY_TOKEN = "matrix-link-token"


def make_objects(objects, users):
    from intake import verification
    from intake.models import Form, FormField, ProposedChange, Submission, VerificationCode

    form = Form.objects.create(
        slug="matrix-verify",
        title="核对表单",
        verify=Form.Verify.EMAIL,
        published_at=timezone.now(),
    )
    FormField.objects.create(
        form=form, key="email", type="email", label="邮箱", target="customer:email"
    )
    pending = Submission.objects.create(
        form=form,
        state=Submission.State.PENDING,
        private_answers={"email": "matrix@example.com"},
    )
    VerificationCode.objects.create(
        submission=pending,
        channel=VerificationCode.Channel.EMAIL,
        code_hash=verification.hash_code(pending.pk, "123456"),
        token_hash=verification.hash_token(VERIFY_TOKEN),
        expires_at=timezone.now() + datetime.timedelta(minutes=10),
        sent_at=timezone.now() - datetime.timedelta(minutes=5),
        send_count=1,
    )
    customer = objects["customer"]
    reviewed = Submission.objects.create(
        form=form, state=Submission.State.REVIEW, customer=customer
    )
    change = ProposedChange.objects.create(
        submission=reviewed,
        customer=customer,
        field="company",
        current_value='"上海华东贸易有限公司"',
        proposed_value='"杭州新公司"',
    )
    return {"pending_submission": pending, "review_submission": reviewed, "change": change}


def url_kwargs(name, objects):
    pending = objects["pending_submission"]
    return {
        "intake:verify": {"slug": pending.form.slug, "pk": pending.pk},
        "intake:verify_resend": {"slug": pending.form.slug, "pk": pending.pk},
        "intake:verify_link": {"token": VERIFY_TOKEN},
        "intake:review_change": {"pk": objects["change"].pk},
        "intake:review_submission": {"pk": objects["review_submission"].pk},
    }.get(name)
