import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# The database itself refuses to change or remove an audit entry, whoever connects. TRUNCATE is
# left alone: it is how the test suite empties tables, and only the table's owner may run it.
REFUSE_CHANGES = """
CREATE FUNCTION accounts_auditentry_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % refused on entry %', TG_OP, OLD.seq
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER accounts_auditentry_append_only
    BEFORE UPDATE OR DELETE ON accounts_auditentry
    FOR EACH ROW EXECUTE FUNCTION accounts_auditentry_refuse_change();
"""
ALLOW_CHANGES = """
DROP TRIGGER accounts_auditentry_append_only ON accounts_auditentry;
DROP FUNCTION accounts_auditentry_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_roles"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "seq",
                    models.BigIntegerField(
                        editable=False, primary_key=True, serialize=False, verbose_name="number"
                    ),
                ),
                ("created_at", models.DateTimeField(editable=False, verbose_name="time")),
                (
                    "action",
                    models.CharField(
                        choices=[
                            ("login", "Signed in"),
                            ("login_failed", "Failed sign-in"),
                            ("lockout", "Locked out"),
                            ("logout", "Signed out"),
                            ("user.create", "User created"),
                            ("user.update", "User changed"),
                            ("user.deactivate", "User deactivated"),
                            ("user.password", "Password changed"),
                            ("user.two_factor", "Two-factor authentication changed"),
                            ("role.change", "Role changed"),
                            ("team.change", "Team changed"),
                            ("permission.grant", "Permission granted"),
                            ("permission.revoke", "Permission revoked"),
                            ("customer.create", "Customer created"),
                            ("customer.update", "Customer changed"),
                            ("customer.delete", "Customer deleted"),
                            ("customer.merge", "Customers merged"),
                            ("customer.bulk", "Bulk action"),
                            ("customer.reveal", "Sensitive value revealed"),
                            ("export", "Export"),
                            ("report.download", "Report downloaded"),
                            ("import", "Import"),
                            ("settings.change", "Settings changed"),
                            ("audit.export", "Audit trail exported"),
                        ],
                        max_length=40,
                        verbose_name="action",
                    ),
                ),
                (
                    "actor_username",
                    models.CharField(blank=True, max_length=150, verbose_name="username"),
                ),
                (
                    "ip",
                    models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address"),
                ),
                (
                    "object_type",
                    models.CharField(blank=True, max_length=100, verbose_name="object type"),
                ),
                (
                    "object_id",
                    models.CharField(blank=True, max_length=64, verbose_name="object id"),
                ),
                (
                    "object_repr",
                    models.CharField(blank=True, max_length=200, verbose_name="object"),
                ),
                ("customer_id", models.UUIDField(blank=True, null=True, verbose_name="customer")),
                ("data", models.JSONField(blank=True, default=dict, verbose_name="details")),
                (
                    "prev_hash",
                    models.CharField(editable=False, max_length=64, verbose_name="previous hash"),
                ),
                ("hash", models.CharField(editable=False, max_length=64, verbose_name="hash")),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "audit entry",
                "verbose_name_plural": "audit entries",
                "ordering": ["-seq"],
                "indexes": [
                    models.Index(fields=["action", "seq"], name="audit_action_seq"),
                    models.Index(fields=["actor_username", "seq"], name="audit_actor_seq"),
                    models.Index(fields=["customer_id", "seq"], name="audit_customer_seq"),
                    models.Index(fields=["created_at"], name="audit_created_at"),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("seq__gte", 1)), name="audit_seq_positive"
                    )
                ],
            },
        ),
        migrations.RunSQL(REFUSE_CHANGES, ALLOW_CHANGES),
    ]
