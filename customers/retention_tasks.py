from celery import shared_task


@shared_task(acks_late=True)
def apply_retention_rules():
    """The nightly run of the enabled retention rules; a rerun finds what is left to do."""
    from customers import retention

    retention.apply_rules()
