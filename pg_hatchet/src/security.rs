//! Who is calling, and which tenants they may act for (docs/security.md).
//!
//! The SQL API's functions are SECURITY DEFINER (they run as the extension's owner, so no role needs privileges on
//! the tables), which makes `current_user` useless for telling callers apart. The caller is the *outer* user
//! instead: the session's role, or the role it switched to with `SET ROLE`, which SECURITY DEFINER does not change
//! (`GetOuterUserId()`).
//!
//! Every API function resolves the tenant it acts for with `hatchet._tenant(tenant_id)`:
//!   * a trusted caller (a superuser, or a role with the privileges of the server or admin group role recorded in
//!     `hatchet.roles`) gets what pg_hatchet always did: the tenant it names, or the default tenant;
//!   * anyone else is bound to the tenants `hatchet.grant_tenant` gave it (or a role it has the privileges of): no
//!     tenant named means its only tenant, and a tenant it is not bound to, or no tenant / several tenants with none
//!     named, is SQLSTATE 42501 before anything is read or written.
//!
//! The answer is cached per backend, so the hot path (dequeue, complete_many) pays one C call and no query. The cache
//! is dropped whenever what it was computed from may have changed: a role or role membership changed (syscache
//! invalidations of `pg_authid` and `pg_auth_members`), or `hatchet.roles` / `hatchet.tenant_grants` changed (their
//! statement triggers send a relcache invalidation, which reaches every backend at the writer's commit and the
//! writer itself at its next command).

use crate::error::HatchetError;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// `hatchet.default_tenant()` (sql/tenants.sql): the tenant of a trusted call that names none.
const DEFAULT_TENANT: [u8; 16] = [
    0x70, 0x7d, 0x08, 0x55, 0x80, 0xab, 0x4e, 0x1f, 0xa1, 0x56, 0xf1, 0xc4, 0x54, 0x6c, 0xbf, 0x52,
];

/// Bumped by the invalidation callbacks; a cached answer is good while it carries the current value. The callbacks
/// only bump it (they may run in the middle of the query that fills the cache).
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// `hatchet.roles` and `hatchet.tenant_grants` (their OIDs, once known), whose relcache invalidations bump it.
static ROLES_REL: AtomicU32 = AtomicU32::new(0);
static GRANTS_REL: AtomicU32 = AtomicU32::new(0);
/// This backend registered its invalidation callbacks (once per process).
static CALLBACKS_REGISTERED: AtomicBool = AtomicBool::new(false);

/// What this backend knows about its last caller.
struct Caller {
    /// The outer user it is about.
    role: pg_sys::Oid,
    /// GENERATION when it was computed.
    generation: u64,
    /// A superuser or a member of the server or admin group role.
    trusted: bool,
    /// The tenants an untrusted caller is bound to, sorted (None until first needed).
    tenants: Option<Vec<[u8; 16]>>,
}

thread_local! {
    static CALLER: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// `hatchet._caller()`: the role a call comes from (the outer user: the session's role or the one `SET ROLE` chose),
/// also inside SECURITY DEFINER functions.
#[pg_extern(name = "_caller", stable, parallel_safe)]
pub(crate) fn caller() -> pg_sys::Oid {
    // Safety: reads a backend global.
    unsafe { pg_sys::GetOuterUserId() }
}

/// `hatchet._tenant(tenant_id)`: the tenant a call acts for (see the module comment). Raises 42501 when the caller
/// may not act for it.
#[pg_extern(name = "_tenant", stable, parallel_restricted)]
pub(crate) fn resolve_tenant(tenant_id: Option<pgrx::Uuid>) -> pgrx::Uuid {
    let role = caller();
    let generation = GENERATION.load(Ordering::Acquire);
    let trusted = CALLER.with_borrow(|c| match c {
        Some(c) if c.role == role && c.generation == generation => Some(c.trusted),
        _ => None,
    });
    let trusted = match trusted {
        Some(t) => t,
        None => {
            register_callbacks();
            let trusted = is_trusted(role);
            CALLER.set(Some(Caller {
                role,
                generation,
                trusted,
                tenants: None,
            }));
            trusted
        }
    };
    if trusted {
        return tenant_id.unwrap_or(pgrx::Uuid::from_bytes(DEFAULT_TENANT));
    }
    let tenants = bound_tenants(role, generation);
    match tenant_id {
        Some(t) if tenants.contains(t.as_bytes()) => t,
        Some(t) => HatchetError::TenantNotGranted {
            role: role_name(role),
            tenant: t.to_string(),
        }
        .raise(),
        None if tenants.len() == 1 => pgrx::Uuid::from_bytes(tenants[0]),
        None => HatchetError::NoTenant {
            role: role_name(role),
            count: tenants.len(),
        }
        .raise(),
    }
}

/// `hatchet._invalidate_security(relation)`: tell every backend (this one at its next command, the others when this
/// transaction commits) that a table the caches are computed from changed. Called by the statement triggers on
/// `hatchet.roles` and `hatchet.tenant_grants`.
#[pg_extern(name = "_invalidate_security", volatile, parallel_unsafe)]
pub(crate) fn invalidate_security(relation: pg_sys::Oid) {
    // Safety: queues a relcache invalidation of an existing relation in the current transaction.
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(relation) };
}

/// A superuser, or a role with the privileges of the server or admin group role.
fn is_trusted(role: pg_sys::Oid) -> bool {
    // Safety: catalog lookups through the syscache, inside a transaction.
    if unsafe { pg_sys::superuser_arg(role) } {
        return true;
    }
    let (trusted_roles, roles_rel, grants_rel) = Spi::get_three::<Vec<pg_sys::Oid>, pg_sys::Oid, pg_sys::Oid>(
        "SELECT coalesce(pg_catalog.array_agg(r.role_id::pg_catalog.oid)
                             FILTER (WHERE r.kind OPERATOR(pg_catalog.=) ANY ('{server,admin}'::pg_catalog.text[])),
                         '{}'),
                'hatchet.roles'::pg_catalog.regclass::pg_catalog.oid,
                'hatchet.tenant_grants'::pg_catalog.regclass::pg_catalog.oid
         FROM hatchet.roles r",
    )
    .unwrap_or_else(|e| error!("pg_hatchet: reading hatchet.roles failed: {e}"));
    ROLES_REL.store(roles_rel.map_or(0, |o| o.to_u32()), Ordering::Release);
    GRANTS_REL.store(grants_rel.map_or(0, |o| o.to_u32()), Ordering::Release);
    trusted_roles
        .unwrap_or_default()
        .into_iter()
        // Safety: a role membership check through the syscache.
        .any(|r| unsafe { pg_sys::has_privs_of_role(role, r) })
}

/// The tenants an untrusted caller is bound to: those granted to a role whose privileges it has.
fn bound_tenants(role: pg_sys::Oid, generation: u64) -> Vec<[u8; 16]> {
    if let Some(t) = CALLER.with_borrow(|c| c.as_ref().and_then(|c| c.tenants.clone())) {
        return t;
    }
    let mut tenants: Vec<[u8; 16]> = Spi::get_one_with_args::<Vec<pgrx::Uuid>>(
        "SELECT coalesce(pg_catalog.array_agg(DISTINCT g.tenant_id), '{}')
         FROM hatchet.tenant_grants g
         JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) g.role_id::pg_catalog.oid
         WHERE pg_catalog.pg_has_role($1, r.oid, 'USAGE')",
        &[role.into()],
    )
    .unwrap_or_else(|e| error!("pg_hatchet: reading hatchet.tenant_grants failed: {e}"))
    .unwrap_or_default()
    .into_iter()
    .map(|u| *u.as_bytes())
    .collect();
    tenants.sort_unstable();
    CALLER.with_borrow_mut(|c| {
        if let Some(c) = c
            .as_mut()
            .filter(|c| c.role == role && c.generation == generation)
        {
            c.tenants = Some(tenants.clone());
        }
    });
    tenants
}

fn role_name(role: pg_sys::Oid) -> String {
    // Safety: returns a palloc'd copy of the name, or NULL (noerr) for an unknown OID.
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        format!("{}", role.to_u32())
    } else {
        // Safety: a NUL-terminated string just returned by Postgres.
        unsafe { CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Register the invalidation callbacks, once per process (Postgres keeps them until the process exits).
fn register_callbacks() {
    if CALLBACKS_REGISTERED.swap(true, Ordering::Relaxed) {
        return;
    }
    // Safety: registers plain function pointers for the lifetime of this process.
    unsafe {
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHOID as i32,
            Some(on_role_change),
            pg_sys::Datum::from(0),
        );
        pg_sys::CacheRegisterSyscacheCallback(
            pg_sys::SysCacheIdentifier::AUTHMEMROLEMEM as i32,
            Some(on_role_change),
            pg_sys::Datum::from(0),
        );
        pg_sys::CacheRegisterRelcacheCallback(Some(on_relation_change), pg_sys::Datum::from(0));
    }
}

/// A role or role membership changed somewhere in the cluster.
unsafe extern "C-unwind" fn on_role_change(_arg: pg_sys::Datum, _cacheid: i32, _hash: u32) {
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

/// A relation's cache entry was invalidated (InvalidOid: all of them).
unsafe extern "C-unwind" fn on_relation_change(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    let relid = relid.to_u32();
    if relid == 0
        || relid == ROLES_REL.load(Ordering::Acquire)
        || relid == GRANTS_REL.load(Ordering::Acquire)
    {
        GENERATION.fetch_add(1, Ordering::AcqRel);
    }
}
