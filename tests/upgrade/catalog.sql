-- A normalised description of everything pg_hatchet owns in the current database, one line per fact, sorted: two
-- databases hold the same schema exactly when this prints the same text (tests/upgrade/run.sh diffs a fresh install
-- against an upgraded one). No OIDs. Left out on purpose: the daily partitions maintain_partitions creates (their
-- names carry the date they were made) with their indexes, constraints and triggers; table contents; statistics.
--
-- Covered: the extension (schema, relocatable, config tables), the schema (owner, ACL), every member object
-- (pg_depend deptype 'e'), tables/views/sequences (kind, persistence, reloptions, partition key and bounds, RLS,
-- owner, ACL), columns (position among live columns, type, collation, default, not null, identity, generated,
-- storage, options, ACL), constraints (pg_get_constraintdef), indexes (pg_get_indexdef), triggers, rules, policies,
-- statistics objects, sequences' parameters, functions and procedures (pg_get_functiondef: language, volatility,
-- strictness, security definer, leakproof, parallel, cost, rows, SET options, body), aggregates, types (enum labels
-- in order, domains with their constraints, composite types through their columns, ranges), operators, casts,
-- default privileges and comments on all of them.
\set ON_ERROR_STOP 1
\pset format unaligned
\pset tuples_only on
\pset pager off

-- The objects in scope: schema hatchet's contents minus the daily partitions and what hangs off them.
CREATE TEMP VIEW daily AS
SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'hatchet' AND c.relispartition AND c.relname ~ '_p[0-9]{8}$'
UNION ALL
SELECT i.indexrelid FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'hatchet' AND c.relispartition AND c.relname ~ '_p[0-9]{8}$';

CREATE TEMP VIEW rels AS
SELECT c.* FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'hatchet' AND c.oid NOT IN (SELECT oid FROM daily);

CREATE TEMP VIEW facts (line) AS
-- the extension itself
SELECT format('extension %s: schema=%s relocatable=%s config=%s conditions=%s', e.extname, n.nspname,
              e.extrelocatable,
              (SELECT coalesce(string_agg(x::regclass::text, ',' ORDER BY x::regclass::text), '')
               FROM unnest(e.extconfig) x),
              coalesce(array_to_string(e.extcondition, ','), ''))
FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_hatchet'
-- every member object
UNION ALL
SELECT 'member ' || pg_catalog.pg_describe_object(d.classid, d.objid, d.objsubid)
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass AND d.deptype = 'e' AND e.extname = 'pg_hatchet'
  AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid IN (SELECT oid FROM daily))
  AND NOT (d.classid = 'pg_catalog.pg_type'::regclass
           AND d.objid IN (SELECT reltype FROM pg_catalog.pg_class WHERE oid IN (SELECT oid FROM daily)))
-- the schema
UNION ALL
SELECT format('schema %s: owner=%s acl=%s', n.nspname, pg_catalog.pg_get_userbyid(n.nspowner), n.nspacl)
FROM pg_catalog.pg_namespace n WHERE n.nspname = 'hatchet'
-- relations
UNION ALL
SELECT format('relation %s: kind=%s persistence=%s options=%s owner=%s acl=%s rls=%s/%s replident=%s am=%s '
              'partkey=%s bound=%s partition_of=%s',
              r.oid::regclass, r.relkind, r.relpersistence, r.reloptions, pg_catalog.pg_get_userbyid(r.relowner),
              r.relacl, r.relrowsecurity, r.relforcerowsecurity, r.relreplident,
              (SELECT amname FROM pg_catalog.pg_am WHERE oid = r.relam),
              CASE WHEN r.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(r.oid) END,
              pg_catalog.pg_get_expr(r.relpartbound, r.oid),
              (SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno)
               FROM pg_catalog.pg_inherits i WHERE i.inhrelid = r.oid))
FROM rels r WHERE r.relkind <> 'i' AND r.relkind <> 'I'
-- columns, numbered among the live ones (a dropped column leaves a gap in attnum that a fresh install has not)
UNION ALL
SELECT format('column %s.%s: position=%s type=%s collation=%s default=%s not_null=%s identity=%s generated=%s '
              'storage=%s compression=%s stattarget=%s options=%s acl=%s',
              r.oid::regclass, quote_ident(a.attname),
              row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum),
              pg_catalog.format_type(a.atttypid, a.atttypmod),
              CASE WHEN a.attcollation <> 0 THEN (SELECT collname FROM pg_catalog.pg_collation
                                                  WHERE oid = a.attcollation) END,
              pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attnotnull, a.attidentity, a.attgenerated,
              a.attstorage, a.attcompression, a.attstattarget,
              -- (this machine's Postgres keeps a per-table pg_attver=<number> among the options: not schema)
              array(SELECT o FROM unnest(a.attoptions) o WHERE o NOT LIKE 'pg\_attver=%' ORDER BY o), a.attacl)
FROM rels r
JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
WHERE r.relkind <> 'i' AND r.relkind <> 'I' AND r.relkind <> 'S'
-- constraints of tables and domains
UNION ALL
SELECT format('constraint %s on %s: %s deferrable=%s deferred=%s validated=%s inherited=%s noinherit=%s',
              quote_ident(c.conname),
              coalesce(c.conrelid::regclass::text, 'domain ' || c.contypid::regtype::text),
              pg_catalog.pg_get_constraintdef(c.oid), c.condeferrable, c.condeferred, c.convalidated,
              c.coninhcount, c.connoinherit)
FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace
-- (a foreign key to a partitioned table also has one row per partition it references)
WHERE n.nspname = 'hatchet' AND c.conrelid NOT IN (SELECT oid FROM daily)
  AND c.confrelid NOT IN (SELECT oid FROM daily) AND c.conindid NOT IN (SELECT oid FROM daily)
-- indexes
UNION ALL
SELECT format('index %s: %s primary=%s unique=%s immediate=%s clustered=%s replident=%s options=%s',
              r.oid::regclass, pg_catalog.pg_get_indexdef(r.oid), i.indisprimary, i.indisunique, i.indimmediate,
              i.indisclustered, i.indisreplident, r.reloptions)
FROM rels r JOIN pg_catalog.pg_index i ON i.indexrelid = r.oid
-- sequences
UNION ALL
SELECT format('sequence %s: type=%s start=%s increment=%s min=%s max=%s cache=%s cycle=%s owned_by=%s',
              s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmin, s.seqmax,
              s.seqcache, s.seqcycle,
              (SELECT string_agg(d.deptype::text || ':' || d.refobjid::regclass::text || '.'
                                 || quote_ident(a.attname), ',' ORDER BY 1)
               FROM pg_catalog.pg_depend d
               JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
               WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.seqrelid
                 AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')))
FROM pg_catalog.pg_sequence s JOIN rels r ON r.oid = s.seqrelid
-- views and materialized views
UNION ALL
SELECT format('view %s: %s', r.oid::regclass, pg_catalog.pg_get_viewdef(r.oid))
FROM rels r WHERE r.relkind IN ('v', 'm')
-- triggers (the clones on daily partitions left out with their tables)
UNION ALL
SELECT format('trigger %s: %s enabled=%s', t.tgname, pg_catalog.pg_get_triggerdef(t.oid), t.tgenabled)
FROM pg_catalog.pg_trigger t JOIN rels r ON r.oid = t.tgrelid
WHERE NOT t.tgisinternal
-- rules other than a view's own
UNION ALL
SELECT format('rule %s on %s: %s', w.rulename, r.oid::regclass, pg_catalog.pg_get_ruledef(w.oid))
FROM pg_catalog.pg_rewrite w JOIN rels r ON r.oid = w.ev_class
WHERE w.rulename <> '_RETURN'
-- row-level security policies
UNION ALL
SELECT format('policy %s on %s: cmd=%s permissive=%s roles=%s using=%s check=%s', p.polname, r.oid::regclass,
              p.polcmd, p.polpermissive,
              (SELECT string_agg(CASE WHEN x = 0 THEN 'public' ELSE pg_catalog.pg_get_userbyid(x) END, ','
                                 ORDER BY 1)
               FROM unnest(p.polroles) x),
              pg_catalog.pg_get_expr(p.polqual, p.polrelid), pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))
FROM pg_catalog.pg_policy p JOIN rels r ON r.oid = p.polrelid
-- extended statistics
UNION ALL
SELECT 'statistics ' || pg_catalog.pg_get_statisticsobjdef(s.oid)
FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace
WHERE n.nspname = 'hatchet'
-- functions and procedures: the full CREATE statement (one fact per line of it, so a diff shows the changed lines)
UNION ALL
SELECT format('function %s: line %s: %s', p.oid::regprocedure, l.n, l.line)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
CROSS JOIN LATERAL pg_catalog.regexp_split_to_table(pg_catalog.pg_get_functiondef(p.oid), E'\n')
    WITH ORDINALITY AS l(line, n)
WHERE n.nspname = 'hatchet' AND p.prokind IN ('f', 'p')
UNION ALL
SELECT format('function %s: kind=%s owner=%s acl=%s', p.oid::regprocedure, p.prokind,
              pg_catalog.pg_get_userbyid(p.proowner), p.proacl)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'hatchet'
-- aggregates (pg_get_functiondef refuses them)
UNION ALL
SELECT format('aggregate %s: sfunc=%s stype=%s final=%s combine=%s init=%s kind=%s',
              a.aggfnoid::regprocedure, a.aggtransfn::regprocedure, a.aggtranstype::regtype,
              nullif(a.aggfinalfn, 0)::regprocedure, nullif(a.aggcombinefn, 0)::regprocedure, a.agginitval,
              a.aggkind)
FROM pg_catalog.pg_aggregate a JOIN pg_catalog.pg_proc p ON p.oid = a.aggfnoid
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'hatchet'
-- types other than the implicit ones (row types of tables, array types)
UNION ALL
SELECT format('type %s: kind=%s owner=%s acl=%s base=%s default=%s not_null=%s labels=%s range_subtype=%s',
              t.oid::regtype, t.typtype, pg_catalog.pg_get_userbyid(t.typowner), t.typacl,
              nullif(t.typbasetype, 0)::regtype, t.typdefault, t.typnotnull,
              (SELECT string_agg(quote_literal(e.enumlabel), ',' ORDER BY e.enumsortorder)
               FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid),
              (SELECT rngsubtype::regtype FROM pg_catalog.pg_range WHERE rngtypid = t.oid))
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = 'hatchet'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type a WHERE a.typarray = t.oid)
  AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')
-- operators
UNION ALL
SELECT format('operator %s: function=%s commutator=%s negator=%s', o.oid::regoperator, o.oprcode::regprocedure,
              nullif(o.oprcom, 0)::regoperator, nullif(o.oprnegate, 0)::regoperator)
FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace
WHERE n.nspname = 'hatchet'
-- default privileges given in the schema
UNION ALL
SELECT format('default privileges for %s in %s on %s: %s', pg_catalog.pg_get_userbyid(d.defaclrole),
              n.nspname, d.defaclobjtype, d.defaclacl)
FROM pg_catalog.pg_default_acl d JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace
WHERE n.nspname = 'hatchet'
-- comments on anything in the schema (tables, columns, indexes, constraints, triggers, functions, types, ...), on
-- the schema and on the extension
UNION ALL
SELECT format('comment on %s: %s', pg_catalog.pg_describe_object(d.classoid, d.objoid, d.objsubid),
              quote_literal(d.description))
FROM pg_catalog.pg_description d
CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) o
WHERE (o.schema = 'hatchet' OR (o.type = 'schema' AND o.identity = 'hatchet')
       OR (o.type = 'extension' AND o.identity = 'pg_hatchet'))
  AND NOT (d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid IN (SELECT oid FROM daily));

SELECT line FROM facts ORDER BY line COLLATE "C";
