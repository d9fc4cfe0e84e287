//! The dashboard's routes against a real database: sign-in, the tenant boundary, CSRF, escaping of hostile data,
//! every page rendering (the live feed has its own binary, `dashboard_live.rs`, so its cluster is quiet).

mod common;

use axum::body::Body;
use hatchet_server::config::{ServerConfig, DEFAULT_TENANT_ID};
use hatchet_server::{rest, AppState};
use http_body_util::BodyExt;
use serde_json::json;
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

struct Answer {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    body: String,
}

async fn request(
    state: &AppState,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Answer {
    let mut req = axum::http::Request::builder().method(method).uri(path);
    if let Some(token) = cookie {
        req = req.header("cookie", format!("hatchet_session={token}"));
    }
    let body = match form {
        Some(f) => {
            req = req.header("content-type", "application/x-www-form-urlencoded");
            Body::from(f.to_owned())
        }
        None => Body::empty(),
    };
    let resp = rest::app(state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let (status, location, set_cookie) = (
        resp.status().as_u16(),
        header("location"),
        header("set-cookie"),
    );
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    Answer {
        status,
        location,
        set_cookie,
        body,
    }
}

async fn get(state: &AppState, path: &str, token: &str) -> Answer {
    request(state, "GET", path, Some(token), None).await
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}

async fn register_worker(pool: &PgPool, tenant: Uuid, name: &str) -> Uuid {
    sqlx::query_scalar(
        "SELECT hatchet.register_worker(name => $1, actions => ARRAY['dash:a'], slots => '{\"default\": 5}', \
         labels => '{\"zone\": \"<b>eu</b>\"}', tenant_id => $2)",
    )
    .bind(name)
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn is_paused(pool: &PgPool, tenant: Uuid, worker: Uuid) -> bool {
    sqlx::query_scalar("SELECT is_paused FROM hatchet.worker(worker_id => $1, tenant_id => $2)")
        .bind(worker)
        .bind(tenant)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A two-task DAG workflow `name` in `tenant` and one run of it with `metadata`.
async fn dag_run(pool: &PgPool, tenant: Uuid, name: &str, metadata: serde_json::Value) -> Uuid {
    let definition = json!({"name": name, "tasks": [
        {"readable_id": "first"}, {"readable_id": "second", "parents": ["first"]}]});
    sqlx::query("SELECT hatchet.register_workflow(definition => $1, tenant_id => $2)")
        .bind(&definition)
        .bind(tenant)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query_scalar(
        "SELECT hatchet.run_workflow(name => $1, input => '{\"x\": 1}', additional_metadata => $2, tenant_id => $3)",
    )
    .bind(name)
    .bind(&metadata)
    .bind(tenant)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn other_tenant(pool: &PgPool) -> Uuid {
    let name = format!("dash-other-{}", Uuid::new_v4());
    sqlx::query_scalar("SELECT hatchet.create_tenant($1)")
        .bind(name)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn pages_need_a_session() {
    let state = common::state().await;
    for path in [
        "/runs",
        "/workers",
        "/workflows",
        "/crons",
        "/events",
        "/rate-limits",
        "/concurrency",
        "/queues",
        "/alerts",
    ] {
        let a = request(&state, "GET", path, None, None).await;
        assert_eq!(a.status, 303, "{path}");
        assert_eq!(a.location.as_deref(), Some("/login"), "{path}");
        let a = get(&state, path, "not-a-token").await;
        assert_eq!(a.status, 303, "{path} with a bad cookie");
    }
    let a = request(&state, "GET", "/login", None, None).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("name=\"token\""));
    // An action without a session does nothing and sends the browser to sign in.
    let a = request(
        &state,
        "POST",
        &format!("/runs/{}/cancel", Uuid::new_v4()),
        None,
        Some("csrf=x"),
    )
    .await;
    assert_eq!(a.status, 303);
    assert_eq!(a.location.as_deref(), Some("/login"));
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-login").await.token;
    let bad = request(
        &state,
        "POST",
        "/login",
        None,
        Some("token=eyJhbGciOiJIUzI1NiJ9.e30.bad"),
    )
    .await;
    assert_eq!(bad.status, 401);
    assert!(bad.set_cookie.is_none());
    assert!(bad.body.contains("sign-in refused"));
    let hostile = request(
        &state,
        "POST",
        "/login",
        None,
        Some("token=%3Cscript%3E%0D%0ASet-Cookie%3A+x"),
    )
    .await;
    assert_eq!(hostile.status, 401);
    assert!(hostile.set_cookie.is_none());

    let ok = request(
        &state,
        "POST",
        "/login",
        None,
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location.as_deref(), Some("/runs"));
    let cookie = ok.set_cookie.unwrap();
    assert!(
        cookie.starts_with(&format!("hatchet_session={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: {cookie}");
    let page = get(&state, "/workers", &token).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&DEFAULT_TENANT_ID.to_string()),
        "the header names the tenant"
    );

    // Sign-in from a link is for `dev` only.
    let link = request(&state, "GET", &format!("/login?token={token}"), None, None).await;
    assert_eq!(link.status, 403);
    assert!(link.set_cookie.is_none());
    let dev = AppState::new(
        common::pool().await,
        ServerConfig {
            dashboard_link_login: true,
            ..common::test_config()
        },
    )
    .unwrap();
    let link = request(&dev, "GET", &format!("/login?token={token}"), None, None).await;
    assert_eq!(link.status, 200);
    assert!(link.set_cookie.unwrap().starts_with("hatchet_session="));

    // Signing out clears the cookie (with the CSRF token only).
    let csrf = csrf_of(&page.body);
    assert_eq!(
        request(&state, "POST", "/logout", Some(&token), Some("csrf=wrong"))
            .await
            .status,
        403
    );
    let out = request(
        &state,
        "POST",
        "/logout",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(out.status, 303);
    assert!(out.set_cookie.unwrap().contains("Max-Age=0"));

    // A revoked token signs the browser out.
    let minted = common::mint(&state, "dash-revoke").await;
    assert_eq!(get(&state, "/runs", &minted.token).await.status, 200);
    state
        .auth
        .revoke(DEFAULT_TENANT_ID, minted.token_id)
        .await
        .unwrap();
    assert_eq!(get(&state, "/runs", &minted.token).await.status, 303);
}

#[tokio::test]
async fn actions_need_the_csrf_token() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-csrf").await.token;
    let worker = register_worker(&state.pool, DEFAULT_TENANT_ID, "dash-csrf-worker").await;
    let page = get(&state, "/workers", &token).await;
    assert!(page.body.contains("dash-csrf-worker"));
    assert!(
        page.body.contains("&lt;b&gt;eu&lt;/b&gt;"),
        "labels are escaped"
    );
    let csrf = csrf_of(&page.body);

    for form in [
        "",
        "csrf=",
        "csrf=0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        let a = request(
            &state,
            "POST",
            &format!("/workers/{worker}/pause"),
            Some(&token),
            Some(form),
        )
        .await;
        assert_eq!(a.status, 403, "form {form:?}");
        assert!(!is_paused(&state.pool, DEFAULT_TENANT_ID, worker).await);
    }
    // Another session's token is not this one's.
    let other = common::mint(&state, "dash-csrf-other").await.token;
    let other_csrf = csrf_of(&get(&state, "/workers", &other).await.body);
    assert_ne!(other_csrf, csrf);
    let a = request(
        &state,
        "POST",
        &format!("/workers/{worker}/pause"),
        Some(&token),
        Some(&format!("csrf={other_csrf}")),
    )
    .await;
    assert_eq!(a.status, 403);
    assert!(!is_paused(&state.pool, DEFAULT_TENANT_ID, worker).await);

    let a = request(
        &state,
        "POST",
        &format!("/workers/{worker}/pause"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 303);
    assert!(is_paused(&state.pool, DEFAULT_TENANT_ID, worker).await);
    assert!(get(&state, "/workers", &token)
        .await
        .body
        .contains("Resume"));
    let a = request(
        &state,
        "POST",
        &format!("/workers/{worker}/resume"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 303);
    assert!(!is_paused(&state.pool, DEFAULT_TENANT_ID, worker).await);
    // Unknown worker: 404, bad id: 400.
    let a = request(
        &state,
        "POST",
        &format!("/workers/{}/pause", Uuid::new_v4()),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 404);
    let a = request(
        &state,
        "POST",
        "/workers/nope/pause",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 400);
}

#[tokio::test]
async fn another_tenants_data_is_not_found() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-tenants").await.token;
    let other = other_tenant(&state.pool).await;
    let run = dag_run(
        &state.pool,
        other,
        "dash_other_wf",
        json!({"secret": "other-tenant"}),
    )
    .await;
    let worker = register_worker(&state.pool, other, "dash-other-worker").await;
    let csrf = csrf_of(&get(&state, "/runs", &token).await.body);

    assert_eq!(
        get(&state, &format!("/runs/{run}"), &token).await.status,
        404
    );
    let list = get(&state, "/runs?window=all", &token).await;
    assert!(!list.body.contains(&run.to_string()));
    assert!(!list.body.contains("dash_other_wf"));
    assert!(!get(&state, "/workers", &token)
        .await
        .body
        .contains("dash-other-worker"));
    assert!(!get(&state, "/workflows", &token)
        .await
        .body
        .contains("dash_other_wf"));
    // Actions on it change nothing.
    let a = request(
        &state,
        "POST",
        &format!("/runs/{run}/cancel"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 404);
    let status: String =
        sqlx::query_scalar("SELECT hatchet.run_status(run_id => $1, tenant_id => $2)")
            .bind(run)
            .bind(other)
            .fetch_one(&state.pool)
            .await
            .unwrap();
    assert_eq!(status, "QUEUED");
    let a = request(
        &state,
        "POST",
        &format!("/workers/{worker}/pause"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 404);
    assert!(!is_paused(&state.pool, other, worker).await);
}

#[tokio::test]
async fn hostile_metadata_is_escaped() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-escape").await.token;
    let hostile = "<script>alert(1)</script>\"'&";
    let run = dag_run(
        &state.pool,
        DEFAULT_TENANT_ID,
        "dash_escape_wf",
        json!({ hostile: hostile }),
    )
    .await;
    for path in [format!("/runs/{run}"), "/runs?window=all".to_owned()] {
        let page = get(&state, &path, &token).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            !page.body.contains("<script>alert"),
            "{path} has raw markup"
        );
        assert!(
            page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}"
        );
    }
    // A filter value comes back escaped too.
    let page = get(&state, "/runs?key=%22%3E%3Cscript%3Ex&value=1", &token).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("\"><script>x"));
    assert!(page.body.contains("&quot;&gt;&lt;script&gt;x"));
}

#[tokio::test]
async fn run_detail_draws_the_dag_and_acts() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-detail").await.token;
    let run = dag_run(
        &state.pool,
        DEFAULT_TENANT_ID,
        "dash_detail_wf",
        json!({"team": "blue"}),
    )
    .await;
    let page = get(&state, &format!("/runs/{run}"), &token).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<svg class=\"dag\""));
    assert!(
        page.body
            .contains("data-task=\"first\" data-status=\"QUEUED\""),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("data-task=\"second\" data-status=\"PENDING\""));
    assert_eq!(page.body.matches("<path ").count(), 1, "one edge");
    assert!(
        page.body.contains("data-event=\"QUEUED\""),
        "the timeline shows the queued task"
    );
    // A task id opens its run; the list filters by metadata and status.
    let first: Uuid = sqlx::query_scalar(
        "SELECT task_id FROM hatchet.run_tasks(run_id => $1) WHERE readable_id = 'first'",
    )
    .bind(run)
    .fetch_one(&state.pool)
    .await
    .unwrap();
    let a = get(&state, &format!("/runs?id={first}"), &token).await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some(format!("/runs/{run}").as_str()))
    );
    let list = get(
        &state,
        "/runs?window=1h&key=team&value=blue&status=QUEUED",
        &token,
    )
    .await;
    assert!(list.body.contains(&format!("data-run=\"{run}\"")));
    let list = get(
        &state,
        "/runs?window=1h&key=team&value=blue&status=COMPLETED",
        &token,
    )
    .await;
    assert!(!list.body.contains(&format!("data-run=\"{run}\"")));
    // Counts per status: exact below the cap of 100, "100+" beyond it (101 queued runs with a metadata value of their
    // own), with a hint saying what the numbers are.
    let batch = Uuid::new_v4().to_string();
    sqlx::query(
        "SELECT count(hatchet.run_workflow(name => 'dash_detail_wf', additional_metadata => \
                jsonb_build_object('batch', $1::text, 'i', i))) FROM generate_series(1, 101) i",
    )
    .bind(&batch)
    .execute(&state.pool)
    .await
    .unwrap();
    let list = get(
        &state,
        &format!("/runs?window=1h&key=batch&value={batch}"),
        &token,
    )
    .await;
    assert_eq!(list.status, 200);
    for count in [
        "data-status=\"QUEUED\"><b>100+</b>QUEUED",
        "data-status=\"RUNNING\"><b>0</b>RUNNING",
        "data-status=\"COMPLETED\"><b>0</b>COMPLETED",
        "each status counted up to 100",
    ] {
        assert!(list.body.contains(count), "{count} in {}", list.body);
    }
    let list = get(
        &state,
        &format!("/runs?window=1h&key=batch&value={batch}&status=QUEUED"),
        &token,
    )
    .await;
    assert_eq!(list.body.matches("data-run=").count(), 50, "a full page");
    assert_eq!(get(&state, "/runs?status=DONE", &token).await.status, 400);
    assert_eq!(get(&state, "/runs/not-a-uuid", &token).await.status, 400);
    assert_eq!(
        get(&state, &format!("/runs/{}", Uuid::new_v4()), &token)
            .await
            .status,
        404
    );

    // Cancel the run from its page, then replay it.
    let csrf = csrf_of(&page.body);
    let a = request(
        &state,
        "POST",
        &format!("/runs/{run}/cancel"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some(format!("/runs/{run}").as_str()))
    );
    let page = get(&state, &format!("/runs/{run}"), &token).await;
    assert!(
        page.body
            .contains("id=\"run-status\"><span class=\"badge muted\">CANCELLED"),
        "{}",
        page.body
    );
    let a = request(
        &state,
        "POST",
        &format!("/runs/{run}/replay"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(a.status, 303);
    let status: String = sqlx::query_scalar("SELECT hatchet.run_status(run_id => $1)")
        .bind(run)
        .fetch_one(&state.pool)
        .await
        .unwrap();
    assert_ne!(status, "CANCELLED", "the replay started the run again");
    let first_status: String = sqlx::query_scalar(
        "SELECT status FROM hatchet.run_tasks(run_id => $1) WHERE readable_id = 'first'",
    )
    .bind(run)
    .fetch_one(&state.pool)
    .await
    .unwrap();
    assert_eq!(first_status, "QUEUED", "its first task is queued again");
}

#[tokio::test]
async fn every_page_renders() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-pages").await.token;
    let run = dag_run(&state.pool, DEFAULT_TENANT_ID, "dash_pages_wf", json!({})).await;
    let _ = run;
    sqlx::query(
        "SELECT hatchet.put_rate_limit(key => 'dash-limit', \"limit\" => 10, duration => 'MINUTE')",
    )
    .execute(&state.pool)
    .await
    .unwrap();
    let workflow: Uuid = sqlx::query_scalar(
        "SELECT id FROM hatchet.list_workflows(workflow_name => 'dash_pages_wf')",
    )
    .fetch_one(&state.pool)
    .await
    .unwrap();
    let expect = [
        ("/runs", "id=\"runs\""),
        ("/workers", "<table>"),
        ("/workflows", "dash_pages_wf"),
        (&format!("/workflows/{workflow}") as &str, "second"),
        ("/crons", "id=\"create-cron\""),
        ("/events", "id=\"events\""),
        ("/rate-limits", "dash-limit"),
        ("/concurrency", "id=\"concurrency\""),
        ("/queues", "dash_pages_wf:first"),
    ];
    for (path, needle) in expect {
        let page = get(&state, path, &token).await;
        assert_eq!(page.status, 200, "{path}");
        assert!(
            page.body.contains(needle),
            "{path} lacks {needle}: {}",
            page.body
        );
    }
    let css = request(&state, "GET", "/static/dashboard.css", None, None).await;
    assert_eq!(css.status, 200);
    let js = request(&state, "GET", "/static/dashboard.js", None, None).await;
    assert!(js.body.contains("EventSource"));
    // `/` goes to the runs; the REST API is untouched.
    assert_eq!(
        request(&state, "GET", "/", None, None)
            .await
            .location
            .as_deref(),
        Some("/runs")
    );
    assert_eq!(
        request(&state, "GET", "/health", None, None).await.status,
        200
    );
}

/// A metadata value common among the newest runs of a workflow but matching fewer than a page in the newest 10,000:
/// the search stops at its budget, and the page says so and links to the older runs, where the rest of the matches
/// are (it used to end the page there, with no way on).
#[tokio::test]
async fn a_search_that_stops_early_offers_the_older_runs() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-resume").await.token;
    sqlx::query(
        "SELECT hatchet.register_workflow('{\"name\": \"dash_resume_wf\", \"tasks\": [{\"readable_id\": \"t\"}]}')",
    )
    .execute(&state.pool)
    .await
    .unwrap();
    let workflow: Uuid = sqlx::query_scalar(
        "SELECT id FROM hatchet.list_workflows(workflow_name => 'dash_resume_wf')",
    )
    .fetch_one(&state.pool)
    .await
    .unwrap();
    // 10,100 runs, oldest first: the 30 oldest match, and 25 of the newest 2,000 (so the value is common there and
    // the day is walked); the newest 10,000 hold only those 25.
    let value = Uuid::new_v4().to_string();
    sqlx::query(
        "SELECT count(hatchet.run_workflow(name => 'dash_resume_wf', additional_metadata => \
                CASE WHEN i <= 30 OR (i > 8100 AND i % 80 = 0) THEN jsonb_build_object('k', $1::text) \
                     ELSE '{}'::jsonb END)) FROM generate_series(1, 10100) i",
    )
    .bind(&value)
    .execute(&state.pool)
    .await
    .unwrap();
    let first = get(
        &state,
        &format!("/runs?window=1h&workflow={workflow}&key=k&value={value}"),
        &token,
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        first.body.matches("data-run=\"").count(),
        25,
        "{}",
        first.body
    );
    assert!(
        first.body.contains("id=\"search-stopped\""),
        "{}",
        first.body
    );
    let href = first
        .body
        .split("href=\"")
        .map(|h| h.split('"').next().unwrap_or_default())
        .find(|h| h.contains("before="))
        .expect("a link to the older runs")
        .replace("&amp;", "&");
    let older = get(&state, &href, &token).await;
    assert_eq!(older.status, 200);
    assert_eq!(
        older.body.matches("data-run=\"").count(),
        30,
        "{}",
        older.body
    );
    assert!(
        !older.body.contains("id=\"search-stopped\""),
        "{}",
        older.body
    );
}

#[tokio::test]
async fn crons_are_created_and_deleted() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-crons").await.token;
    dag_run(&state.pool, DEFAULT_TENANT_ID, "dash_cron_wf", json!({})).await;
    let csrf = csrf_of(&get(&state, "/crons", &token).await.body);
    let bad = request(&state, "POST", "/crons", Some(&token),
        Some(&format!("csrf={csrf}&kind=cron&workflow=dash_cron_wf&name=n1&expression=not+a+cron&input=%7B%7D"))).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    let ok = request(&state, "POST", "/crons", Some(&token),
        Some(&format!("csrf={csrf}&kind=cron&workflow=dash_cron_wf&name=dash-nightly&expression=0+3+*+*+*&input=%7B%7D"))).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let page = get(&state, "/crons", &token).await;
    assert!(page.body.contains("data-cron=\"dash-nightly\""));
    let at = page.body.find("data-cron=\"dash-nightly\"").unwrap();
    let row = &page.body[at..at + page.body[at..].find("</tr>").unwrap()];
    assert!(row.contains("<time"), "next fire shown: {row}");
    let id = row.split("/crons/").nth(1).unwrap()[..36].to_owned();
    let del = request(
        &state,
        "POST",
        &format!("/crons/{id}/delete"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(del.status, 303);
    assert!(!get(&state, "/crons", &token)
        .await
        .body
        .contains("data-cron=\"dash-nightly\""));
    let again = request(
        &state,
        "POST",
        &format!("/crons/{id}/delete"),
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(again.status, 404);
}

/// A local HTTP sink: every POST body it receives, as JSON.
async fn http_sink() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use std::sync::{Arc, Mutex};
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let store = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                store
                    .lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// The stored channels of a tenant, as the extension has them (secret included).
async fn stored_channels(
    pool: &PgPool,
    tenant: Uuid,
) -> Vec<(String, bool, serde_json::Value, serde_json::Value)> {
    sqlx::query_as(
        "SELECT kind, enabled, settings, secret FROM hatchet.alert_channels WHERE tenant_id = $1 ORDER BY kind",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .unwrap()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn alert_channels_are_added_tested_and_deleted() {
    let state = common::state().await;
    // Its own tenant: a channel on the default tenant would send alerts for the other tests' failures.
    let tenant = other_tenant(&state.pool).await;
    let token = state
        .auth
        .mint(&hatchet_server::auth::MintRequest {
            tenant_id: tenant,
            name: "dash-alerts".into(),
            expires_in: std::time::Duration::from_secs(3600),
            server_url: "http://localhost:8080".into(),
            grpc_broadcast_address: "localhost:7077".into(),
        })
        .await
        .unwrap()
        .token;
    assert_eq!(
        request(&state, "GET", "/alerts", None, None).await.status,
        303
    );
    let page = get(&state, "/alerts", &token).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No alert channel"), "{}", page.body);
    assert!(page.body.contains("href=\"/alerts\" class=\"active\""));
    let csrf = csrf_of(&page.body);
    let (url, got) = http_sink().await;
    let webhook = format!(
        "kind=webhook&url={}&headers={}&ev_run_failed=on&ev_worker_died=on&enabled=on",
        enc(&url),
        enc(r#"{"X-Sink-Key": "k-secret-header"}"#)
    );

    // Without the CSRF token nothing is stored.
    let a = request(&state, "POST", "/alerts", Some(&token), Some(&webhook)).await;
    assert_eq!(a.status, 403);
    assert!(stored_channels(&state.pool, tenant).await.is_empty());
    // Bad input is the extension's 400, and nothing is stored.
    for bad in [
        "kind=webhook&url=ftp%3A%2F%2Fx&ev_run_failed=on&enabled=on".to_owned(),
        "kind=webhook&url=http%3A%2F%2Fx&headers=%5B1%5D&ev_run_failed=on".to_owned(),
        format!("kind=webhook&url={}&enabled=on", enc(&url)),
        "kind=email&host=h&port=smtp&tls=none&from=a%40b.c&to=d%40e.f&ev_run_failed=on".to_owned(),
        "kind=email&host=h&port=25&tls=none&from=a%40b.c&to=&ev_run_failed=on".to_owned(),
        "kind=pager&ev_run_failed=on".to_owned(),
    ] {
        let a = request(
            &state,
            "POST",
            "/alerts",
            Some(&token),
            Some(&format!("csrf={csrf}&{bad}")),
        )
        .await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
        assert!(
            stored_channels(&state.pool, tenant).await.is_empty(),
            "{bad}"
        );
    }

    let a = request(
        &state,
        "POST",
        "/alerts",
        Some(&token),
        Some(&format!("csrf={csrf}&{webhook}")),
    )
    .await;
    assert_eq!(
        (a.status, a.location.as_deref()),
        (303, Some("/alerts")),
        "{}",
        a.body
    );
    let stored = stored_channels(&state.pool, tenant).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].3,
        json!({"url": url, "headers": {"X-Sink-Key": "k-secret-header"}})
    );
    // The secret is never shown back: the page names the fields only.
    let page = get(&state, "/alerts", &token).await;
    assert!(page.body.contains("data-channel=\"webhook\""));
    assert!(page
        .body
        .contains("headers <span class=\"muted\">set</span>"));
    assert!(!page.body.contains(&url), "the URL is secret");
    assert!(!page.body.contains("k-secret-header"), "headers are secret");
    assert!(page.body.contains("run_failed, worker_died"));

    // Saving the form again with the secret fields empty keeps the secret and changes the rest.
    let a = request(
        &state,
        "POST",
        "/alerts",
        Some(&token),
        Some(&format!(
            "csrf={csrf}&kind=webhook&url=&headers=&ev_cron_missed=on"
        )),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let stored = stored_channels(&state.pool, tenant).await;
    assert!(!stored[0].1, "disabled");
    assert_eq!(stored[0].3["url"], json!(url));
    let events: Vec<String> =
        sqlx::query_scalar("SELECT events FROM hatchet.alert_channels WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&state.pool)
            .await
            .unwrap();
    assert_eq!(events, vec!["cron_missed"]);

    // A test alert goes out now, through the channel as stored (disabled or not), and says where it went.
    let t = request(
        &state,
        "POST",
        "/alerts/webhook/test",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert!(t.body.contains("data-delivered=\"true\""), "{}", t.body);
    assert!(!t.body.contains(&url));
    {
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["event"], "test");
        assert_eq!(got[0]["tenant_id"], json!(tenant));
        assert!(got[0]["text"]
            .as_str()
            .unwrap()
            .contains("this webhook channel works"));
    }
    // The REST API's test is the same function.
    let rest = rest::app(state.clone())
        .oneshot(
            axum::http::Request::builder()
                .method("POST")
                .uri(format!(
                    "/api/v1/stable/tenants/{tenant}/alert-channels/webhook/test"
                ))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest.status().as_u16(), 200);
    let answer: serde_json::Value =
        serde_json::from_slice(&rest.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(answer["delivered"], json!(true), "{answer}");
    assert_eq!(got.lock().unwrap().len(), 2);
    // A channel whose endpoint is down: the page says why, and nothing else changes.
    let dead = format!("http://127.0.0.1:{}/hook", common::free_port());
    let a = request(
        &state,
        "POST",
        "/alerts",
        Some(&token),
        Some(&format!(
            "csrf={csrf}&kind=slack&url={}&ev_run_failed=on&enabled=on",
            enc(&dead)
        )),
    )
    .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let t = request(
        &state,
        "POST",
        "/alerts/slack/test",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(t.status, 200);
    assert!(t.body.contains("data-delivered=\"false\""), "{}", t.body);
    assert!(t.body.contains("could not connect"), "{}", t.body);
    assert!(!t.body.contains(&dead), "the reason names the host only");
    // Testing a channel that is not set, or of an unknown kind, or without the CSRF token.
    let t = request(
        &state,
        "POST",
        "/alerts/email/test",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(t.status, 404);
    let t = request(
        &state,
        "POST",
        "/alerts/pager/test",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(t.status, 400);
    let t = request(
        &state,
        "POST",
        "/alerts/webhook/test",
        Some(&token),
        Some("csrf=x"),
    )
    .await;
    assert_eq!(t.status, 403);
    assert_eq!(got.lock().unwrap().len(), 2);

    // Another tenant (the default one) sees none of it.
    let default_token = common::mint(&state, "dash-alerts-default").await.token;
    let other = get(&state, "/alerts", &default_token).await;
    assert!(!other.body.contains("data-channel=\"webhook\""));

    // Delete: 303, then 404; a wrong CSRF token deletes nothing.
    let d = request(
        &state,
        "POST",
        "/alerts/webhook/delete",
        Some(&token),
        Some("csrf=x"),
    )
    .await;
    assert_eq!(d.status, 403);
    assert_eq!(stored_channels(&state.pool, tenant).await.len(), 2);
    let d = request(
        &state,
        "POST",
        "/alerts/webhook/delete",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(d.status, 303);
    let d = request(
        &state,
        "POST",
        "/alerts/webhook/delete",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(d.status, 404);
    let left = stored_channels(&state.pool, tenant).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, "slack");
    assert!(!get(&state, "/alerts", &token)
        .await
        .body
        .contains("data-channel=\"webhook\""));
}

#[tokio::test]
async fn an_https_public_url_makes_the_cookie_secure() {
    let state = AppState::new(
        common::pool().await,
        ServerConfig {
            public_url: "https://hatchet.example.com".into(),
            secure_cookies: true,
            ..common::test_config()
        },
    )
    .unwrap();
    let token = common::mint(&state, "dash-secure").await.token;
    let ok = request(
        &state,
        "POST",
        "/login",
        None,
        Some(&format!("token={token}")),
    )
    .await;
    assert_eq!(ok.status, 303);
    let cookie = ok.set_cookie.unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let csrf = csrf_of(&get(&state, "/runs", &token).await.body);
    let out = request(
        &state,
        "POST",
        "/logout",
        Some(&token),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    let cleared = out.set_cookie.unwrap();
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("; Secure"),
        "{cleared}"
    );
}

#[tokio::test]
async fn events_page_by_keyset() {
    let state = common::state().await;
    let token = common::mint(&state, "dash-events").await.token;
    let key = format!("dash-page-{}", Uuid::new_v4());
    // 120 events: three pages of 50, 50 and 20, newest first.
    let mut pushed: Vec<Uuid> = Vec::new();
    for i in 0..120 {
        let id: Uuid = sqlx::query_scalar("SELECT hatchet.push_event(key => $1, payload => $2)")
            .bind(&key)
            .bind(json!({"n": i}))
            .fetch_one(&state.pool)
            .await
            .unwrap();
        pushed.push(id);
    }
    let ids_of = |body: &str| -> Vec<Uuid> {
        body.split("data-event-id=\"")
            .skip(1)
            .map(|s| Uuid::parse_str(&s[..36]).unwrap())
            .collect()
    };
    let older_of = |body: &str| -> Option<String> {
        let at = body.find("id=\"older\"")?;
        let href = body[..at].rfind("href=\"")? + "href=\"".len();
        Some(
            body[href..at]
                .trim_end_matches(['"', ' '])
                .replace("&amp;", "&"),
        )
    };
    let mut seen = Vec::new();
    let mut path = format!("/events?key={key}");
    let mut pages = 0;
    loop {
        let page = get(&state, &path, &token).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let ids = ids_of(&page.body);
        pages += 1;
        if pages > 1 {
            assert!(
                page.body.contains("id=\"newest\""),
                "a later page links to the newest"
            );
        }
        seen.extend(ids);
        match older_of(&page.body) {
            Some(next) => {
                assert!(
                    next.contains(&format!("key={key}")),
                    "the key filter is kept: {next}"
                );
                path = next;
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    // Event ids are UUIDv7 (their time first): newest first is descending id order.
    let mut newest_first = pushed.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first, "every event once, newest first");
    // A bad cursor is 400.
    assert_eq!(get(&state, "/events?before=nope", &token).await.status, 400);
}
