"""`python manage.py seed_demo [--customers N]`: demo users, teams, customers and their history.

Customers are generated in chunks, copied into temporary tables and merged with
INSERT ... ON CONFLICT DO NOTHING, one transaction per chunk together with their orders,
interactions and consents. Every row is reproducible (see customers.demo), so a second run
inserts nothing and a run with a larger N adds only the missing customers.
"""

import contextlib
import functools
import itertools
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import django
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts import roles
from accounts.models import Team
from customers import demo
from customers.models import Consent, Customer, Interaction, Order, OrderNumber, Tag
from intake.demo import ensure_demo_forms
from reports.demo import create_demo_reports
from reports.metrics import fill_missing_metrics
from reports.models.summaries import rebuild_summaries
from reports.scheduling import create_demo_schedule

DEFAULT_PASSWORD = "cims-demo-2026"
CHUNK = 20_000
# A load of at least this many customers that at least doubles the table drops the tables'
# secondary indexes and builds them afterwards: building an index from sorted rows is many
# times cheaper than updating it row by row, above all the trigram index.
REBUILD_INDEXES_FROM = 100_000
SLOWEST_INDEX = "customer_search_text_idx"

EAST_TEAM, SOUTH_TEAM = "华东销售", "华南销售"
# username: (given name, family name, team, administrator)
USERS = {
    "admin": ("敏", "周", None, roles.ADMINISTRATOR),
    "manager": ("美玲", "林", EAST_TEAM, roles.MANAGER),
    "staff": ("伟", "张", EAST_TEAM, roles.STAFF),
    "staff2": ("晓东", "陈", SOUTH_TEAM, roles.STAFF),
    "viewer": ("洋", "刘", EAST_TEAM, roles.VIEWER),
    "auditor": ("静", "赵", None, roles.AUDITOR),
}
OWNERS = ("manager", "staff", "staff2")

# (model, columns of its rows in customers.demo), in the order they are staged.
TABLES = {
    Customer: demo.CUSTOMER_COLUMNS,
    Order: demo.ORDER_COLUMNS,
    Interaction: demo.INTERACTION_COLUMNS,
    Consent: demo.CONSENT_COLUMNS,
}
# Generated as integer microseconds since the Unix epoch and converted by the database.
TIME_COLUMNS = {"created_at", "updated_at", "ordered_at", "occurred_at", "recorded_at"}


class Command(BaseCommand):
    # Translated when the command is loaded: argparse needs plain strings.
    help = _(
        "Create the demo users and teams and realistic customers with orders, interactions and "
        "consents. Running it again changes nothing; a larger --customers adds the missing ones. "
        "Users get the password in DEMO_PASSWORD when they are created."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--customers",
            type=int,
            default=2000,
            help=_("How many demo customers there should be (default 2,000)."),
        )

    def handle(self, *args, customers, **options):
        if customers < 0:
            raise CommandError(_("--customers cannot be negative."))
        if _unapplied_migrations():
            raise CommandError(_("The database is not up to date: run `manage.py migrate` first."))
        started = time.monotonic()
        staff = ensure_users(os.environ.get("DEMO_PASSWORD", DEFAULT_PASSWORD))
        manager = get_user_model().objects.get(username="manager")
        ensure_demo_forms(manager)
        create_demo_reports(manager=manager)
        create_demo_schedule(manager=manager)
        Tag.remember(demo.TAGS)
        factory = demo.CustomerFactory(anchor=find_anchor(), staff=staff)
        with rebuilt_indexes(customers, self.say):
            totals = self.load(factory, customers, started)
        if totals["customers"]:
            # Loaded with the triggers off (see load_chunk): the figures they keep are
            # computed here, set-based, for everything at once.
            self.say(_("Computing order figures and dashboard summaries…"))
            fill_missing_metrics()
            OrderNumber.fill_missing()
            rebuild_summaries()
            self.say(_("Vacuuming and updating planner statistics…"))
            vacuum_and_analyze()
            # Order figures are kept current as orders arrive; scores and segments are not.
            self.say(_("Scoring customers (RFM segments and lifetime value)…"))
            call_command("refresh_customer_metrics", stdout=self.stdout)
        self.say(
            _(
                "Demo data ready: %(customers)s new customers, %(orders)s new orders and "
                "%(interactions)s new interactions in %(seconds).0f s."
            )
            % {
                **{name: f"{value:,}" for name, value in totals.items()},
                "seconds": time.monotonic() - started,
            }
        )

    def load(self, factory, count, started):
        chunks = [range(start, min(start + CHUNK, count)) for start in range(0, count, CHUNK)]
        totals = {"customers": 0, "orders": 0, "interactions": 0}
        for chunk, added in zip(chunks, _load_chunks(factory, chunks), strict=True):
            for name in totals:
                totals[name] += added[name]
            self.say(
                _("%(done)s of %(count)s customers (%(seconds).0f s)")
                % {
                    "done": f"{chunk.stop:,}",
                    "count": f"{count:,}",
                    "seconds": time.monotonic() - started,
                }
            )
        return totals

    def say(self, text):
        self.stdout.write(text)
        self.stdout.flush()


def vacuum_and_analyze():
    """Statistics for the planner, and (outside a transaction) a vacuum of the new rows.

    Vacuuming a fresh load sets the visibility map and the GIN indexes' statistics, without
    which PostgreSQL misjudges the search indexes and scans whole tables; autovacuum would do
    it eventually, if it is on. VACUUM cannot run in a transaction, as under tests.
    """
    command = "ANALYZE" if connection.in_atomic_block else "VACUUM (ANALYZE)"
    with connection.cursor() as cursor:
        for model in TABLES:
            cursor.execute(f"{command} {model._meta.db_table}")


def _unapplied_migrations():
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def ensure_users(password):
    """Create the demo users and teams (or bring them back to their demo state)."""
    teams = {name: Team.objects.get_or_create(name=name)[0] for name in (EAST_TEAM, SOUTH_TEAM)}
    users = {}
    for username, (given, family, team, role) in USERS.items():
        administrator = role == roles.ADMINISTRATOR
        user, created = get_user_model().objects.update_or_create(
            username=username,
            defaults={
                "first_name": given,
                "last_name": family,
                "email": f"{username}@example.com",
                "is_active": True,
                "is_staff": administrator,
                "is_superuser": administrator,
            },
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        user.groups.add(Group.objects.get(name=role))
        if team:
            teams[team].members.add(user)
        users[username] = user

    def owner(name):
        return users[name].pk, teams[USERS[name][2]].pk

    return demo.Staff(
        east_owners=(owner("manager"), owner("staff")),
        south_owners=(owner("staff2"),),
        recorders=tuple(users[name].pk for name in OWNERS),
    )


def find_anchor():
    """The moment the demo data counts back from: that of the first run, or now.

    Keeping the first run's anchor is what makes a later run generate the same rows. It is read
    back from customer 0, whose phone number does not depend on it.
    """
    first = Customer.objects.with_phone(demo.phone_number(0)).values_list("pk", "created_at")
    for pk, created in first:
        anchor = demo.anchor_of(0, pk.hex, demo.micros(created))
        if anchor is not None:
            return anchor
    return demo.micros(timezone.now().replace(microsecond=0))


def _load_chunks(factory, chunks):
    """What each chunk added, in order, as the chunks finish.

    Two worker processes, each with its own database connection, load chunks side by side:
    while one waits for PostgreSQL to merge its chunk, the other generates the next, so both
    cores stay busy. A single chunk is loaded here, on the current connection, which lets tests
    see it inside their transaction.
    """
    if len(chunks) <= 1:
        yield from (load_chunk(factory, chunk) for chunk in chunks)
        return
    # Spawned, not forked: a forked child would share this process's database connection.
    # Django is set up before the task function (and so this module) is unpickled.
    workers = ProcessPoolExecutor(
        max_workers=2, mp_context=multiprocessing.get_context("spawn"), initializer=django.setup
    )
    with workers:
        yield from workers.map(
            _load_chunk_in_worker,
            itertools.repeat(connection.settings_dict),
            itertools.repeat(factory.anchor),
            itertools.repeat(factory.staff),
            chunks,
        )


def _load_chunk_in_worker(database, anchor, staff, indexes):
    # The parent's database, which under tests is not the one the settings name.
    connection.settings_dict = database
    return load_chunk(_worker_factory(anchor, staff), indexes)


@functools.cache
def _worker_factory(anchor, staff):
    # One per worker process, so that its cache of names lasts from chunk to chunk.
    return demo.CustomerFactory(anchor=anchor, staff=staff)


def load_chunk(factory, indexes):
    """Generate and insert customers `indexes` with their history; return what was added."""
    with transaction.atomic(), connection.cursor() as cursor:
        if _all_present(cursor, factory, indexes):
            return {"customers": 0, "orders": 0, "interactions": 0}
        # Demo data can be regenerated, so a crash may lose the last commits.
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        if _is_superuser(cursor):
            # Every reference holds by construction (owners are the demo users; history is
            # inserted only for customers added by the same transaction), so a superuser skips
            # the row-by-row foreign-key checks, as pg_restore --disable-triggers does. They
            # would take a third of the database's time. The reports' triggers are skipped
            # too; the command computes what they keep once the load is done.
            cursor.execute("SET LOCAL session_replication_role = replica")
        _create_staging_tables(cursor)
        profiles = _stage_customers(cursor, factory, indexes)
        _stage_history(cursor, factory, profiles)
        return _merge(cursor)


def _is_superuser(cursor):
    cursor.execute("SELECT current_setting('is_superuser') = 'on'")
    return cursor.fetchone()[0]


def _all_present(cursor, factory, indexes):
    """Whether an earlier run inserted every customer of the chunk, and so also their history."""
    ids = [demo.customer_identity(index, factory.anchor)[0] for index in indexes]
    cursor.execute(
        f"SELECT count(*) FROM {Customer._meta.db_table} WHERE id = ANY(%s::uuid[])", [ids]
    )
    return cursor.fetchone()[0] == len(ids)


def _create_staging_tables(cursor):
    """Temporary tables shaped like the generated rows, dropped when the chunk commits."""
    for model, columns in TABLES.items():
        table = model._meta.db_table
        # Inside an outer transaction (tests) nothing commits, so an earlier chunk's may remain.
        cursor.execute(f"DROP TABLE IF EXISTS demo_{table}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE demo_{table} ON COMMIT DROP AS "
            f"SELECT {', '.join(columns)} FROM {table} WITH NO DATA"
        )
        for column in TIME_COLUMNS.intersection(columns):
            cursor.execute(f"ALTER TABLE demo_{table} ALTER {column} TYPE bigint USING NULL")
    cursor.execute("DROP TABLE IF EXISTS demo_new_customer")
    cursor.execute("CREATE TEMPORARY TABLE demo_new_customer (id uuid) ON COMMIT DROP")


def _stage_customers(cursor, factory, indexes):
    profiles = []
    with _copy(cursor, Customer) as copy:
        for index in indexes:
            row, profile = factory.build(index)
            copy.write_row(row)
            profiles.append(profile)
    return profiles


def _stage_history(cursor, factory, profiles):
    interactions, consents = [], []
    with _copy(cursor, Order) as copy:
        for profile in profiles:
            orders, more_interactions, more_consents = demo.activity(
                profile, factory.anchor, factory.staff
            )
            for row in orders:
                copy.write_row(row)
            interactions += more_interactions
            consents += more_consents
    for model, rows in ((Interaction, interactions), (Consent, consents)):
        with _copy(cursor, model) as copy:
            for row in rows:
                copy.write_row(row)


def _copy(cursor, model):
    columns = ", ".join(TABLES[model])
    return cursor.copy(f"COPY demo_{model._meta.db_table} ({columns}) FROM STDIN")


def _merge(cursor):
    """Insert the staged rows that are not there yet; history only for customers just added.

    A customer is skipped when a row with its id, phone or email exists (the unique blind
    indexes tell): from an earlier run, or a real customer who happens to have the same phone.
    Its staged history is skipped with it.
    """
    cursor.execute(
        f"WITH {_CONSENTED_PURPOSES}, added AS ({_insert(Customer, 'TRUE')} RETURNING id) "
        "INSERT INTO demo_new_customer SELECT id FROM added"
    )
    added = {"customers": cursor.rowcount}
    belongs = "customer_id IN (SELECT id FROM demo_new_customer)"
    for model, name in ((Order, "orders"), (Interaction, "interactions"), (Consent, None)):
        cursor.execute(_insert(model, belongs))
        if name:
            added[name] = cursor.rowcount
    return added


# Each staged customer's currently granted purposes (the latest staged consent of each purpose),
# written with the customer: the triggers that keep Customer.consented_purposes are skipped when
# a superuser loads (above), and the consents go in after the customers anyway.
_CONSENTED_PURPOSES = """
latest_consents AS (
    SELECT DISTINCT ON (customer_id, purpose) customer_id, purpose, granted
    FROM demo_customers_consent ORDER BY customer_id, purpose, recorded_at DESC, id DESC
), consented AS (
    SELECT customer_id, array_agg(purpose ORDER BY purpose) AS purposes
    FROM latest_consents WHERE granted GROUP BY customer_id
)"""


def _insert(model, condition):
    table = model._meta.db_table
    columns = list(TABLES[model])
    values = [
        f"'epoch'::timestamptz + {c} * interval '1 microsecond'" if c in TIME_COLUMNS else c
        for c in columns
    ]
    source = f"demo_{table}"
    if model is Customer:
        columns.append("consented_purposes")
        values.append("COALESCE(consented.purposes, '{}')")
        source += " LEFT JOIN consented ON consented.customer_id = id"
    # Inserting in primary-key order keeps the index writes together.
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) "
        f"SELECT {', '.join(values)} FROM {source} WHERE {condition} ORDER BY id "
        "ON CONFLICT DO NOTHING"
    )


@contextlib.contextmanager
def rebuilt_indexes(target, say):
    """Around a load that at least doubles a large customer table, drop the indexes declared in
    the models' Meta.indexes and build them again afterwards.

    Primary keys, unique indexes (which ON CONFLICT needs) and foreign-key indexes stay. Missing
    indexes are restored at the end of every run, in case an earlier one was killed midway.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {Customer._meta.db_table}")
        existing = cursor.fetchone()[0]
    try:
        if target - existing >= max(REBUILD_INDEXES_FROM, existing):
            say(_("Dropping the secondary indexes for the load; they are rebuilt at the end."))
            _drop_indexes()
        yield
    finally:
        _restore_indexes(say)


def _declared_indexes():
    return [(model, index) for model in TABLES for index in model._meta.indexes]


def _present_indexes(model):
    with connection.cursor() as cursor:
        return set(connection.introspection.get_constraints(cursor, model._meta.db_table))


def _drop_indexes():
    with connection.schema_editor() as editor:
        for model, index in _declared_indexes():
            if index.name in _present_indexes(model):
                editor.remove_index(model, index)


def _restore_indexes(say):
    missing = [(m, i) for m, i in _declared_indexes() if i.name not in _present_indexes(m)]
    if not missing:
        return
    say(_("Building %(count)s indexes…") % {"count": len(missing)})
    if connection.in_atomic_block:
        # Another connection would wait for this transaction's locks on the tables.
        _build_indexes(missing)
        return
    # The trigram index takes about as long as all the others together: a second connection
    # builds it meanwhile.
    slowest = [(m, i) for m, i in missing if i.name == SLOWEST_INDEX]
    with ThreadPoolExecutor(max_workers=1) as pool:
        beside = pool.submit(_build_indexes_in_thread, slowest)
        _build_indexes([pair for pair in missing if pair not in slowest])
        beside.result()


def _build_indexes(indexes):
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
    try:
        # The schema editor writes exactly the definitions the migrations did.
        with connection.schema_editor() as editor:
            for model, index in indexes:
                editor.add_index(model, index)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET maintenance_work_mem")


def _build_indexes_in_thread(indexes):
    try:
        _build_indexes(indexes)
    finally:
        connection.close()
