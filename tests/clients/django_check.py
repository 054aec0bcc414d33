"""Django's ORM (psycopg 3 backend) as a masked identity through the clsf
proxy (tests/tests/tools.rs runs it): connect (the backend's start-up
settings and version check), introspection and `inspectdb`, querysets with
a model that maps every column of a table with a denied one (as
`inspectdb` writes it), server-side cursors, savepoints and `explain`.

Usage: django_check.py HOST PORT DBNAME CA_FILE TOKEN

Prints one `key value` line per check. Exits non-zero on anything
unexpected.
"""
import io
import sys

import django
from django.conf import settings

host, port, dbname, ca, token = sys.argv[1:6]

settings.configure(
    DATABASES={"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": dbname, "USER": "workload", "PASSWORD": token,
        "HOST": host, "PORT": port,
        "OPTIONS": {"sslmode": "verify-full", "sslrootcert": ca,
                    "hostaddr": "127.0.0.1", "connect_timeout": 10},
    }},
    INSTALLED_APPS=["django.contrib.contenttypes"],
    USE_TZ=True, TIME_ZONE="UTC",
)
django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, models, transaction  # noqa: E402
from django.db.utils import ProgrammingError  # noqa: E402


class Customer(models.Model):
    """Every column of `customers`, `ssn` (denied to this identity) too."""
    id = models.IntegerField(primary_key=True)
    name = models.TextField()
    email = models.TextField()
    ssn = models.CharField(max_length=11)
    card_number = models.CharField(max_length=19)
    created_at = models.DateTimeField()

    class Meta:
        app_label = "shop"
        managed = False
        db_table = "customers"


class Event(models.Model):
    id = models.IntegerField(primary_key=True)
    customer = models.ForeignKey(Customer, models.DO_NOTHING)
    kind = models.TextField()
    contact = models.TextField()

    class Meta:
        app_label = "shop"
        managed = False
        db_table = "events"


connection.ensure_connection()
print("connect", connection.pg_version // 10000)
print("tables", *sorted(connection.introspection.table_names()))

# inspectdb reads each table's columns and their types with
# `SELECT * FROM t LIMIT 1`, which reads a row: over `customers`, whose
# `ssn` is denied, Django reports the refusal as a comment and goes on.
out = io.StringIO()
call_command("inspectdb", "customers", "orders", "events", stdout=out)
models_text = out.getvalue()
print("inspectdb", *sorted(
    line.split("(")[0].split()[1] for line in models_text.splitlines()
    if line.startswith("class ")
))
refused = [line for line in models_text.splitlines()
           if line.startswith("# The error was:")]
print("inspectdb_refused", "ssn" if refused and "`ssn`" in refused[0] else refused)

customers = Customer.objects.defer("ssn")
print("defer", customers.get(id=1).email, customers.get(id=1).card_number)
print("values", *customers.filter(name__icontains="a").order_by("id")
      .values_list("email", flat=True)[:2])
print("count", Customer.objects.count(), Event.objects.filter(customer_id=1).count())
try:
    Customer.objects.get(id=1)
    print("denied", "NOT-DENIED")
except ProgrammingError as e:
    print("denied", e.__cause__.sqlstate)
print("after_denial", customers.get(id=2).email)

# Server-side cursors (DECLARE … CURSOR WITH HOLD in autocommit).
contacts = [e.contact for e in Event.objects.order_by("id").iterator(chunk_size=1000)]
print("iterator", len(contacts), contacts[0])
with transaction.atomic():
    with transaction.atomic():
        print("savepoint", customers.select_related(None).first().email)
print("join", Event.objects.select_related("customer").defer("customer__ssn")
      .order_by("id").first().customer.email)

# EXPLAIN plans the model's whole column list, `ssn` too: it sends no row,
# so the proxy plans the masked table with NULL for the denied column.
plan = Customer.objects.filter(id=1).explain()
print("explain", "customers" in plan and "Scan" in plan)
plan = Customer.objects.filter(id=1).explain(analyze=True, format="json")
print("explain_analyze", '"Actual Rows": 1' in plan)
try:
    Customer.objects.filter(ssn="123-45-6789").explain()
    print("explain_filter", "NOT-DENIED")
except ProgrammingError as e:
    print("explain_filter", e.__cause__.sqlstate)
