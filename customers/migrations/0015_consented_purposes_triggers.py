"""Keep Customer.consented_purposes in step with customers_consent, in the database.

A customer's consent to a purpose is the latest of its consent records (by recorded_at, the id
breaking ties). Statement-level triggers with transition tables recompute it for the customers
whose consents a statement inserted, changed or deleted, whatever wrote them: the ORM, a bulk
insert, COPY, a merge moving records between customers, a cascade. The customers' rows are
locked in id order first, so two transactions never lock the same rows in opposite orders.

A row trigger on customers_customer recomputes the column whenever a write would change it and
when a row is inserted: a Customer loaded before a consent was recorded and saved after it
writes back the value it read, and a row restored from a snapshot (undoing a merge) carries the
value of its time. Neither can leave the column wrong.
"""

from django.db import migrations

TRIGGERS = """
CREATE FUNCTION customers_current_consents(customer uuid) RETURNS varchar(30)[]
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_agg(purpose ORDER BY purpose) FILTER (WHERE granted), '{}')
    FROM (
        SELECT DISTINCT ON (purpose) purpose, granted
        FROM customers_consent WHERE customer_id = customer
        ORDER BY purpose, recorded_at DESC, id DESC
    ) latest
$$;

CREATE FUNCTION customers_customer_refresh_consents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.consented_purposes := customers_current_consents(NEW.id);
    RETURN NEW;
END $$;

CREATE TRIGGER customers_customer_consents_insert
BEFORE INSERT ON customers_customer
FOR EACH ROW EXECUTE FUNCTION customers_customer_refresh_consents();

CREATE TRIGGER customers_customer_consents_update
BEFORE UPDATE OF consented_purposes ON customers_customer
FOR EACH ROW WHEN (NEW.consented_purposes IS DISTINCT FROM OLD.consented_purposes)
EXECUTE FUNCTION customers_customer_refresh_consents();

-- Joined to unnest() rather than tested with = ANY(): a function's plan is cached once it has
-- run a few times, and a cached plan tests a large array element by element, row by row.
CREATE FUNCTION customers_refresh_consented_purposes(customer_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM customers_customer c JOIN unnest(customer_ids) i(id) ON c.id = i.id
    ORDER BY c.id FOR UPDATE OF c;
    UPDATE customers_customer c SET consented_purposes = fresh.purposes
    FROM (
        SELECT i.id, customers_current_consents(i.id) AS purposes FROM unnest(customer_ids) i(id)
    ) fresh
    WHERE c.id = fresh.id AND c.consented_purposes IS DISTINCT FROM fresh.purposes;
END $$;

CREATE FUNCTION customers_consents_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM customers_refresh_consented_purposes(
        ARRAY(SELECT DISTINCT customer_id FROM new_consents));
    RETURN NULL;
END $$;

CREATE FUNCTION customers_consents_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM customers_refresh_consented_purposes(ARRAY(
        SELECT customer_id FROM old_consents UNION SELECT customer_id FROM new_consents));
    RETURN NULL;
END $$;

CREATE FUNCTION customers_consents_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM customers_refresh_consented_purposes(
        ARRAY(SELECT DISTINCT customer_id FROM old_consents));
    RETURN NULL;
END $$;

CREATE TRIGGER customers_consent_insert
AFTER INSERT ON customers_consent REFERENCING NEW TABLE AS new_consents
FOR EACH STATEMENT EXECUTE FUNCTION customers_consents_inserted();

CREATE TRIGGER customers_consent_update
AFTER UPDATE ON customers_consent REFERENCING OLD TABLE AS old_consents NEW TABLE AS new_consents
FOR EACH STATEMENT EXECUTE FUNCTION customers_consents_updated();

CREATE TRIGGER customers_consent_delete
AFTER DELETE ON customers_consent REFERENCING OLD TABLE AS old_consents
FOR EACH STATEMENT EXECUTE FUNCTION customers_consents_deleted();
"""

DROP_TRIGGERS = """
DROP TRIGGER customers_consent_delete ON customers_consent;
DROP TRIGGER customers_consent_update ON customers_consent;
DROP TRIGGER customers_consent_insert ON customers_consent;
DROP FUNCTION customers_consents_deleted();
DROP FUNCTION customers_consents_updated();
DROP FUNCTION customers_consents_inserted();
DROP FUNCTION customers_refresh_consented_purposes(uuid[]);
DROP TRIGGER customers_customer_consents_update ON customers_customer;
DROP TRIGGER customers_customer_consents_insert ON customers_customer;
DROP FUNCTION customers_customer_refresh_consents();
DROP FUNCTION customers_current_consents(uuid);
"""


class Migration(migrations.Migration):
    dependencies = [("customers", "0014_customer_consented_purposes")]

    operations = [migrations.RunSQL(TRIGGERS, DROP_TRIGGERS)]
