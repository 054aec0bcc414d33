#!/usr/bin/env python3
"""Classifies every built-in PostgreSQL function for clsf's engine.

Usage: classify_functions.py OUT.rs DATABASE_URL [DATABASE_URL ...]

Reads `pg_proc` (volatility, kind, argument and result types, schema) of
`pg_catalog` and `information_schema` from each server given (PostgreSQL
13-17 where available), classifies each function name with the rules below,
and writes the Rust table the engine consults (compiler/engine/src/
functions/builtin.rs). A name with several overloads takes the most
protective class of them; a name seen on several servers, the most
protective class over all of them.

Classes (spec/runtime.md, "Functions"):
  pure            computes on its arguments alone
  metadata        reads only catalogs, settings and session facts that carry
                  no row values
  value-exposing  reads rows, files, other sessions' statements or
                  statistics values, or runs SQL text
  side-effecting  changes server, session or sequence state, or is a
                  server-internal function (`internal` arguments or result,
                  triggers, handlers) not meant to be called from SQL

Identities with masked or denied columns may call pure and metadata
functions; a rule's `allow function NAME` can permit more.

A stable or volatile function that no rule below classifies stops the
script with its name: a new PostgreSQL version cannot widen or narrow what
is allowed without a decision written here. Immutable functions compute on
their arguments by PostgreSQL's own contract and are pure unless a rule
says otherwise.

Needs `psql` on PATH. Deterministic output: sorted, no timestamps.
"""
import re
import subprocess
import sys

PURE, METADATA, VALUE, SIDE = "Pure", "Metadata", "ValueExposing", "SideEffecting"
# Most protective last.
ORDER = [PURE, METADATA, VALUE, SIDE]

# (class, reason, regex over the function name); first match wins. Applied
# before the structural defaults, so they also override `immutable`.
RULES = [
    # --- value-exposing -------------------------------------------------
    (VALUE, "runs SQL text or reads whole relations", r"(query|table|schema|database|cursor)_to_xml(schema|_and_xmlschema)?"),
    (VALUE, "runs SQL text (its query argument)", r"ts_stat|ts_rewrite"),
    (VALUE, "reads files on the database server", r"pg_read_(binary_)?file(_old)?|pg_ls_\w+|pg_stat_file|pg_current_logfile|pg_show_all_file_settings|pg_hba_file_rules|pg_ident_file_mappings"),
    (VALUE, "reads or writes large objects, which hold stored values", r"lo_\w+|loread|lowrite"),
    (VALUE, "returns statement text, which can hold values", r"current_query|pg_stat_get_activity|pg_stat_get_backend_activity"),
    (VALUE, "returns column statistics values", r"pg_mcv_list_items"),
    (VALUE, "returns decoded WAL, which holds row values", r"pg_logical_slot_(get|peek)_(binary_)?changes"),
    # --- side-effecting -------------------------------------------------
    (SIDE, "changes settings (SET is decided on its own)", r"set_config"),
    (SIDE, "server-internal: validates a function definition", r"fmgr_\w+_validator|plpgsql_validator"),
    (SIDE, "changes session or sequence state", r"setseed|setval|nextval"),
    # Exporting the transaction's snapshot lets another session read as of
    # the same moment (pg_dump --jobs shares its leader's this way); the
    # importer reads under its own identity and policy: no value moves.
    (METADATA, "exports the transaction's snapshot for other sessions to read as of: reads nothing", r"pg_export_snapshot"),
    # Releasing the session's own advisory locks reads nothing and cannot
    # block or signal another session; pools run it on every release
    # (asyncpg's reset query): not a side effect to refuse.
    (METADATA, "releases the session's own advisory locks: reads nothing, blocks nothing", r"pg_advisory_unlock(_shared|_all)?"),
    (SIDE, "holds the backend or takes locks", r"pg_sleep(_for|_until)?|pg_(try_)?advisory_\w+"),
    (SIDE, "signals other sessions", r"pg_notify|pg_terminate_backend|pg_cancel_backend|pg_log_backend_memory_contexts"),
    (SIDE, "changes server state", r"pg_reload_conf|pg_rotate_logfile(_old)?|pg_switch_wal|pg_create_\w+|pg_drop_replication_slot|pg_copy_\w+_replication_slot|pg_replication_slot_advance|pg_replication_origin_(advance|create|drop|session_reset|session_setup|xact_reset|xact_setup)|pg_backup_(start|stop)|pg_promote|pg_wal_replay_(pause|resume)|pg_stat_reset\w*|pg_stat_clear_snapshot|pg_stat_force_next_flush|pg_logical_emit_message|pg_import_system_collations|pg_extension_config_dump|binary_upgrade_\w+|brin_summarize_\w+|brin_desummarize_range|gin_clean_pending_list|pg_nextoid|pg_stop_making_pinned_objects"),
    # --- metadata (stable or volatile, reading catalogs and session facts) ---
    (METADATA, "reads a setting (the proxy's own settings are refused by name)", r"current_setting"),
    (METADATA, "lists settings (not placeholders such as the proxy's own, which PostgreSQL does not list)", r"pg_show_all_settings"),
    (METADATA, "session facts", r"current_database|current_schemas?|current_user|session_user|getpgusername|version|pg_backend_pid|inet_(client|server)_(addr|port)|pg_postmaster_start_time|pg_conf_load_time|pg_current_xact_id(_if_assigned)?|txid_current(_if_assigned|_snapshot)?|pg_current_snapshot|pg_trigger_depth|pg_my_temp_schema|pg_is_other_temp_schema|pg_listening_channels|pg_client_encoding|getdatabaseencoding|pg_jit_available|pg_notification_queue_usage|currval|lastval|pg_cursor|pg_prepared_statement|get_current_ts_config"),
    (METADATA, "reads catalogs (names, definitions, comments, privileges)", r"col_description|obj_description|shobj_description|format_type|has_\w+_privilege|pg_has_role|row_security_active|pg_\w+_is_visible|pg_get_\w+|pg_describe_object|pg_identify_object(_as_address)?|pg_index_column_has_property|pg_index_has_property|pg_indexam_has_property|pg_relation_filenode|pg_relation_filepath|pg_filenode_relation|pg_relation_is_updatable|pg_column_is_updatable|pg_relation_is_publishable|pg_sequence_parameters|pg_sequence_last_value|pg_settings_get_flags|pg_tablespace_databases|pg_tablespace_location|pg_available_extension_versions|pg_available_extensions|pg_extension_update_paths|pg_config|pg_event_trigger_\w+|pg_encoding_to_char|pg_char_to_encoding|enum_(first|last|range)|to_reg\w+|reg\w+(in|out)|regclass|aclexplode|acliteminn?|aclitemout|_pg_\w+|pg_replication_origin_oid|pg_partition_\w+|pg_collation_actual_version|pg_database_collation_actual_version|amvalidate|currtid2|pg_options_to_table|ts_debug|ts_parse|ts_token_type|pg_timezone_abbrevs|pg_timezone_names|oidvectortypes"),
    (METADATA, "reads sizes, statistics counters and server status (no row values)", r"pg_\w*_size|pg_stat_get_\w+|pg_stat_have_stats|pg_lock_status|pg_blocking_pids|pg_safe_snapshot_blocking_pids|pg_isolation_test_session_is_blocked|pg_prepared_xact|pg_control_\w+|pg_current_wal_\w+|pg_last_\w+|pg_is_in_recovery|pg_is_wal_replay_paused|pg_xact_\w+|txid_status|pg_replication_origin_(progress|session_progress|session_is_setup)|pg_show_replication_origin_status|pg_get_replication_slots"),
    # --- pure (stable or volatile only because of settings or randomness) ---
    (PURE, "computes on its arguments (depends on time zone, date style or locale settings)", r"age|mxid_age|date|date_\w+|time|timetz|timetz_in|time_in|timestamp|timestamptz|timestamp_\w+|timestamptz_\w+|interval_\w+|now|statement_timestamp|transaction_timestamp|clock_timestamp|timeofday|timezone|overlaps|extract|make_timestamptz|to_char|to_date|to_number|to_timestamp|money|cash_(in|out)|numeric|in_range"),
    (PURE, "computes on its arguments", r"anytextcat|textanycat|array_to_json|array_to_string|concat|concat_ws|convert|convert_from|convert_to|format|length|quote_literal|quote_nullable|row_to_json|to_json|to_jsonb|json_\w+|jsonb_\w+|xml|xml_in|xml_is_well_formed|pg_typeof|pg_column_size|pg_column_compression|pg_collation_for|generate_series|to_tsquery|to_tsvector|phraseto_tsquery|plainto_tsquery|websearch_to_tsquery|ts_headline|ts_match_\w+|random|gen_random_uuid|domain_in"),
    (PURE, "converts a value to or from its text form", r"\w+_(in|out)|record_(in|out)|array_(in|out)|multirange_(in|out)|range_(in|out)|enum_(in|out)|date_(in|out)|interval_(in|out)"),
    (PURE, "converts a value to its binary form", r"\w*send"),
]

SERVER_INTERNAL = {"internal", "trigger", "event_trigger", "language_handler", "fdw_handler",
                   "index_am_handler", "table_am_handler", "tsm_handler"}

QUERY = """
SELECT n.nspname, p.proname, p.provolatile, p.prokind,
       format_type(p.prorettype, NULL),
       coalesce((SELECT string_agg(format_type(t, NULL), ',' ORDER BY i)
                 FROM unnest(p.proargtypes) WITH ORDINALITY AS a(t, i)), '')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2
"""


def rows(url):
    out = subprocess.run(["psql", "-X", "-At", "-F", "\t", "-d", url, "-c", QUERY],
                         check=True, capture_output=True, text=True).stdout
    version = subprocess.run(["psql", "-X", "-At", "-d", url, "-c", "SHOW server_version_num"],
                             check=True, capture_output=True, text=True).stdout.strip()
    return str(int(version) // 10000), [line.split("\t") for line in out.splitlines() if line]


def classify(schema, name, volatile, kind, result, args):
    for cls, reason, pattern in RULES:
        if re.fullmatch(pattern, name):
            return cls, reason
    types = set(filter(None, args.split(","))) | {result}
    if types & SERVER_INTERNAL:
        return SIDE, "server-internal (takes or returns `internal`, a trigger or a handler): not called from SQL"
    if volatile == "i":
        return PURE, "immutable: computes on its arguments alone"
    if kind in ("a", "w"):
        return PURE, "aggregate or window function over its input"
    return None, None


def rust_str(text):
    """A Rust string literal for `text`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_path, urls = sys.argv[1], sys.argv[2:]
    table = {}
    versions = []
    unclassified = set()
    for url in urls:
        version, found = rows(url)
        versions.append(version)
        for schema, name, volatile, kind, result, args in found:
            cls, reason = classify(schema, name, volatile, kind, result, args)
            if cls is None:
                unclassified.add(f"{schema}.{name} ({'stable' if volatile == 's' else 'volatile'})")
                continue
            key = (schema, name)
            if key not in table or ORDER.index(cls) > ORDER.index(table[key][0]):
                table[key] = (cls, reason)
    if unclassified:
        sys.exit("unclassified built-in functions (add a rule):\n  " + "\n  ".join(sorted(unclassified)))
    with open(out_path, "w") as f:
        f.write("//! Every built-in function of `pg_catalog` and `information_schema`, with\n")
        f.write("//! its class. Generated by `compiler/catalog/classify_functions.py` from\n")
        f.write(f"//! `pg_proc` of PostgreSQL {', '.join(sorted(set(versions)))}; do not edit:\n")
        f.write("//! change the rules there and run it again.\n\n")
        f.write("use super::FunctionClass::{self, *};\n\n")
        f.write("/// (schema, name, class, why), sorted by schema and name.\n")
        f.write("#[rustfmt::skip]\n")
        f.write("pub(crate) static BUILTIN: &[(&str, &str, FunctionClass, &str)] = &[\n")
        for (schema, name), (cls, reason) in sorted(table.items()):
            f.write(f"    ({rust_str(schema)}, {rust_str(name)}, {cls}, {rust_str(reason)}),\n")
        f.write("];\n")
    print(f"{len(table)} functions from {len(urls)} server(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
