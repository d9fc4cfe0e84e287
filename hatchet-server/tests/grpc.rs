//! The gRPC server as the SDKs see it: a real tonic client over a real socket, gzip in both directions, keepalive
//! pings, message size limits, clear status codes for bad input, and honest UNIMPLEMENTED answers for what is not
//! built yet.

mod common;

use common::{with_auth, TestServer};
use hatchet_server::config::ENGINE_VERSION;
use hatchet_server::proto::{
    self, dispatcher_client::DispatcherClient, events_service_client::EventsServiceClient,
    v1::admin_service_client::AdminServiceClient, v1::v1_dispatcher_client::V1DispatcherClient,
    workflow_service_client::WorkflowServiceClient, GetVersionRequest,
};
use std::time::Duration;
use tonic::codec::CompressionEncoding::Gzip;
use tonic::transport::Endpoint;

fn semver(v: &str) -> (u64, u64, u64) {
    let mut parts = v
        .trim_start_matches('v')
        .split('-')
        .next()
        .unwrap()
        .split('.');
    let mut next = || parts.next().unwrap().parse::<u64>().unwrap();
    (next(), next(), next())
}

#[tokio::test]
async fn get_version_over_gzip() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let mut client = DispatcherClient::new(server.channel().await)
        .send_compressed(Gzip)
        .accept_compressed(Gzip);
    let resp = client
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await
        .expect("GetVersion");
    assert_eq!(
        resp.metadata()
            .get("grpc-encoding")
            .and_then(|v| v.to_str().ok()),
        Some("gzip"),
        "the response should be gzip-compressed when the client accepts it"
    );
    let version = resp.into_inner().version;
    assert_eq!(version, ENGINE_VERSION);
    // The newest gate hatchet-sdk 1.43.1 knows (RETRY_AFTER, v0.111.0): durable tasks (>= v0.80.0), batch tasks
    // (>= v0.88.1) and retry-after are all served.
    let v = semver(&version);
    assert!(v >= (0, 111, 0), "{version}");

    // Uncompressed requests work too.
    let mut plain = DispatcherClient::new(server.channel().await);
    let resp = plain
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await;
    assert_eq!(resp.unwrap().into_inner().version, ENGINE_VERSION);
    server.stop().await.unwrap();
}

fn assert_unimplemented<T: std::fmt::Debug>(result: Result<T, tonic::Status>, method: &str) {
    let status = result.expect_err(method);
    assert_eq!(
        status.code(),
        tonic::Code::Unimplemented,
        "{method}: {status:?}"
    );
    // Not "compressed with gzip which isn't supported": the service accepted the gzip request and answered.
    assert_eq!(status.message(), format!("{method} is not implemented yet"));
}

#[tokio::test]
async fn unbuilt_rpcs_answer_unimplemented_on_every_service() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let auth = Some(bearer.as_str());
    let channel = server.channel().await;

    let mut dispatcher = DispatcherClient::new(channel.clone()).send_compressed(Gzip);
    // Batch tasks are served: an event naming no batch is bad input, not an unbuilt RPC.
    let status = dispatcher
        .send_batch_action_event(with_auth(proto::BatchActionEvent::default(), auth))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("batch_id"), "{status:?}");

    let mut workflows = WorkflowServiceClient::new(channel.clone()).send_compressed(Gzip);
    assert_unimplemented(
        workflows
            .put_workflow(with_auth(proto::PutWorkflowRequest::default(), auth))
            .await,
        "WorkflowService.PutWorkflow",
    );

    assert_unimplemented(
        dispatcher
            .send_group_key_action_event(with_auth(proto::GroupKeyActionEvent::default(), auth))
            .await,
        "Dispatcher.SendGroupKeyActionEvent",
    );
    // Accepted and ignored, as Hatchet's v1 engine does; without a token it is refused like every RPC.
    dispatcher
        .put_overrides_data(with_auth(proto::OverridesData::default(), auth))
        .await
        .expect("PutOverridesData is accepted");
    let anonymous = dispatcher
        .put_overrides_data(with_auth(proto::OverridesData::default(), None))
        .await
        .expect_err("no token");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous:?}"
    );

    // Every RPC of EventsService is served; a replay of an event that does not exist is NOT_FOUND.
    let mut events = EventsServiceClient::new(channel.clone()).send_compressed(Gzip);
    let missing = events
        .replay_single_event(with_auth(
            proto::ReplayEventRequest {
                event_id: "0190d6a2-0000-7000-8000-000000000000".into(),
            },
            auth,
        ))
        .await
        .expect_err("an unknown event");
    assert_eq!(missing.code(), tonic::Code::NotFound, "{missing:?}");

    let mut admin = AdminServiceClient::new(channel.clone()).send_compressed(Gzip);
    // BranchDurableTask is served (durable execution); a request naming no task is a bad argument.
    let no_task = admin
        .branch_durable_task(with_auth(
            proto::v1::BranchDurableTaskRequest::default(),
            auth,
        ))
        .await
        .expect_err("no task to branch");
    assert_eq!(no_task.code(), tonic::Code::InvalidArgument, "{no_task:?}");
    // ReplayTasks is served; naming nothing to replay is a bad argument.
    let nothing = admin
        .replay_tasks(with_auth(proto::v1::ReplayTasksRequest::default(), auth))
        .await
        .expect_err("nothing to replay");
    assert_eq!(nothing.code(), tonic::Code::InvalidArgument, "{nothing:?}");

    // (v1.V1Dispatcher serves all its RPCs: see durable_task_stream_answers_and_refuses_in_order.)
    drop(channel);
    server.stop().await.unwrap();
}

/// The DurableTask stream answers each request in order: the worker registration is echoed, and a request the
/// extension refuses (an unknown task, a malformed id) gets an `error` naming the task and invocation with the
/// reason, so the SDK fails the waiting call at once. The stream stays open after a refusal.
#[tokio::test]
async fn durable_task_stream_answers_and_refuses_in_order() {
    use proto::v1::{durable_task_request::Message as Req, durable_task_response::Message as Resp};
    use tokio_stream::StreamExt;
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let mut durable = V1DispatcherClient::new(server.channel().await).send_compressed(Gzip);
    let unknown = uuid::Uuid::new_v4().to_string();
    let requests = vec![
        Req::RegisterWorker(proto::v1::DurableTaskRequestRegisterWorker {
            worker_id: "w-1".into(),
        }),
        Req::Memo(proto::v1::DurableTaskMemoRequest {
            invocation_count: 1,
            durable_task_external_id: unknown.clone(),
            key: b"k".to_vec(),
            payload: None,
        }),
        Req::WaitFor(proto::v1::DurableTaskWaitForRequest {
            invocation_count: 3,
            durable_task_external_id: "not-a-uuid".into(),
            wait_for_conditions: None,
            label: None,
        }),
        Req::EvictInvocation(proto::v1::DurableTaskEvictInvocationRequest {
            invocation_count: 2,
            durable_task_external_id: unknown.clone(),
            reason: None,
        }),
    ];
    let outbound = tokio_stream::iter(
        requests
            .into_iter()
            .map(|m| proto::v1::DurableTaskRequest { message: Some(m) }),
    )
    .chain(tokio_stream::pending());
    let mut inbound = durable
        .durable_task(with_auth(outbound, Some(&bearer)))
        .await
        .expect("DurableTask")
        .into_inner();
    match next_message(&mut inbound).await {
        Resp::RegisterWorker(r) => assert_eq!(r.worker_id, "w-1"),
        other => panic!("expected register_worker, got {other:?}"),
    }
    for (task, invocation, reason) in [
        (
            unknown.as_str(),
            1,
            format!("task \"{unknown}\" does not exist"),
        ),
        ("not-a-uuid", 3, "must be a UUID".to_owned()),
        (
            unknown.as_str(),
            2,
            format!("task \"{unknown}\" does not exist"),
        ),
    ] {
        match next_message(&mut inbound).await {
            Resp::Error(e) => {
                let at = e.r#ref.expect("ref");
                assert_eq!(
                    (at.durable_task_external_id.as_str(), at.invocation_count),
                    (task, invocation)
                );
                assert_eq!(
                    e.error_type,
                    proto::v1::DurableTaskErrorType::Unspecified as i32
                );
                assert!(e.error_message.contains(&reason), "{}", e.error_message);
            }
            other => panic!("expected error, got {other:?}"),
        }
    }

    // The legacy RegisterDurableEvent: a malformed id is INVALID_ARGUMENT, an unknown task NOT_FOUND.
    let legacy = |task_id: &str| proto::v1::RegisterDurableEventRequest {
        task_id: task_id.to_owned(),
        signal_key: "k".into(),
        conditions: None,
    };
    let status = durable
        .register_durable_event(with_auth(legacy("nope"), Some(&bearer)))
        .await
        .expect_err("malformed id");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = durable
        .register_durable_event(with_auth(legacy(&unknown), Some(&bearer)))
        .await
        .expect_err("unknown task");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    server.stop().await.unwrap();
}

/// The legacy pair: a wait registered by signal key for a running durable task (claimed here by a SQL consumer) is
/// delivered on ListenForDurableEvent once an event satisfies it, with the wait's result, and not before.
#[tokio::test]
async fn legacy_durable_event_is_delivered_once_satisfied() {
    use proto::v1::{
        BaseMatchCondition, DurableEventListenerConditions, ListenForDurableEventRequest,
        RegisterDurableEventRequest, UserEventMatchCondition,
    };
    use tokio_stream::StreamExt;
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let pool = &server.state.pool;
    let name = format!("legacy-{}", uuid::Uuid::new_v4().simple());
    sqlx::query("SELECT hatchet.register_workflow($1)")
        .bind(
            serde_json::json!({"name": name, "tasks": [{"readable_id": "d", "is_durable": true}]}),
        )
        .execute(pool)
        .await
        .expect("register");
    let task: uuid::Uuid = sqlx::query_scalar("SELECT hatchet.run_workflow($1)")
        .bind(&name)
        .fetch_one(pool)
        .await
        .expect("run");
    let claimed: uuid::Uuid =
        sqlx::query_scalar("SELECT task_id FROM hatchet.dequeue($1, 'legacy-worker')")
            .bind(format!("{name}:d"))
            .fetch_one(pool)
            .await
            .expect("claim");
    assert_eq!(claimed, task);

    let key = format!("{name}:go");
    let mut durable = V1DispatcherClient::new(server.channel().await).send_compressed(Gzip);
    let conditions = DurableEventListenerConditions {
        sleep_conditions: vec![],
        user_event_conditions: vec![UserEventMatchCondition {
            base: Some(BaseMatchCondition {
                readable_data_key: key.clone(),
                action: 0,
                or_group_id: "g".into(),
                expression: String::new(),
            }),
            user_event_key: key.clone(),
            event_scope: None,
            consider_events_since: None,
        }],
    };
    let register = RegisterDurableEventRequest {
        task_id: task.to_string(),
        signal_key: "sig".into(),
        conditions: Some(conditions),
    };
    durable
        .register_durable_event(with_auth(register, Some(&bearer)))
        .await
        .expect("RegisterDurableEvent");
    let outbound = tokio_stream::iter(vec![ListenForDurableEventRequest {
        task_id: task.to_string(),
        signal_key: "sig".into(),
    }])
    .chain(tokio_stream::pending());
    let mut inbound = durable
        .listen_for_durable_event(with_auth(outbound, Some(&bearer)))
        .await
        .expect("ListenForDurableEvent")
        .into_inner();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), inbound.message())
            .await
            .is_err(),
        "nothing is delivered before the event"
    );
    sqlx::query("SELECT hatchet.push_event($1, '{\"n\": 1}')")
        .bind(&key)
        .execute(pool)
        .await
        .expect("push");
    let event = tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("delivered within 10 s")
        .expect("no stream error")
        .expect("an event");
    assert_eq!(
        (event.task_id.as_str(), event.signal_key.as_str()),
        (task.to_string().as_str(), "sig")
    );
    let data: serde_json::Value = serde_json::from_slice(&event.data).expect("JSON");
    assert_eq!(data, serde_json::json!({"CREATE": {key: [{"n": 1}]}}));
    server.stop().await.unwrap();
}

/// The next message of a DurableTask response stream, within 10 s.
async fn next_message(
    inbound: &mut tonic::Streaming<proto::v1::DurableTaskResponse>,
) -> proto::v1::durable_task_response::Message {
    tokio::time::timeout(Duration::from_secs(10), inbound.message())
        .await
        .expect("a response within 10 s")
        .expect("no stream error")
        .expect("the stream stays open")
        .message
        .expect("a response message")
}

fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    what: &str,
) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(!status.message().is_empty(), "{what}: no message");
}

#[tokio::test]
async fn bad_input_gets_a_clear_status_and_changes_nothing() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let auth = Some(bearer.as_str());
    let channel = server.channel().await;
    let pool = server.state.pool.clone();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let workflows_before = count("SELECT count(*) FROM hatchet.workflows").await;
    let runs_before = count("SELECT count(*) FROM hatchet.runs").await;

    let mut dispatcher = DispatcherClient::new(channel.clone()).send_compressed(Gzip);
    assert_code(
        dispatcher
            .register(with_auth(proto::WorkerRegisterRequest::default(), auth))
            .await,
        tonic::Code::InvalidArgument,
        "Register without a name",
    );
    assert_code(
        dispatcher
            .listen_v2(with_auth(
                proto::WorkerListenRequest {
                    worker_id: "nope".into(),
                },
                auth,
            ))
            .await,
        tonic::Code::InvalidArgument,
        "ListenV2 with a malformed id",
    );
    assert_code(
        dispatcher
            .listen_v2(with_auth(
                proto::WorkerListenRequest {
                    worker_id: uuid::Uuid::new_v4().to_string(),
                },
                auth,
            ))
            .await,
        tonic::Code::NotFound,
        "ListenV2 for an unknown worker",
    );
    assert_code(
        dispatcher
            .send_step_action_event(with_auth(
                proto::StepActionEvent {
                    task_run_external_id: uuid::Uuid::new_v4().to_string(),
                    event_type: proto::StepActionEventType::StepEventTypeFailed as i32,
                    event_payload: "boom".into(),
                    ..Default::default()
                },
                auth,
            ))
            .await,
        tonic::Code::NotFound,
        "FAILED for an unknown task",
    );

    let mut admin = AdminServiceClient::new(channel.clone()).send_compressed(Gzip);
    let task = |id: &str, parents: &[&str]| proto::v1::CreateTaskOpts {
        readable_id: id.into(),
        action: format!("cyclic:{id}"),
        parents: parents.iter().map(|p| (*p).to_owned()).collect(),
        ..Default::default()
    };
    assert_code(
        admin
            .put_workflow(with_auth(
                proto::v1::CreateWorkflowVersionRequest {
                    name: "cyclic".into(),
                    tasks: vec![task("a", &["b"]), task("b", &["a"])],
                    ..Default::default()
                },
                auth,
            ))
            .await,
        tonic::Code::InvalidArgument,
        "PutWorkflow with a cycle",
    );
    assert_code(
        admin
            .put_workflow(with_auth(
                proto::v1::CreateWorkflowVersionRequest {
                    name: "orphan".into(),
                    tasks: vec![task("a", &["missing"])],
                    ..Default::default()
                },
                auth,
            ))
            .await,
        tonic::Code::InvalidArgument,
        "PutWorkflow with an unknown parent",
    );
    assert_code(
        admin
            .get_run_details(with_auth(
                proto::v1::GetRunDetailsRequest {
                    external_id: uuid::Uuid::new_v4().to_string(),
                },
                auth,
            ))
            .await,
        tonic::Code::NotFound,
        "GetRunDetails of an unknown run",
    );

    let mut workflows = WorkflowServiceClient::new(channel.clone()).send_compressed(Gzip);
    assert_code(
        workflows
            .trigger_workflow(with_auth(
                proto::v1::TriggerWorkflowRequest {
                    name: "no-such-workflow".into(),
                    input: "{}".into(),
                    ..Default::default()
                },
                auth,
            ))
            .await,
        tonic::Code::NotFound,
        "TriggerWorkflow of an unknown workflow",
    );
    assert_code(
        workflows
            .trigger_workflow(with_auth(
                proto::v1::TriggerWorkflowRequest {
                    name: "no-such-workflow".into(),
                    input: "{not json".into(),
                    ..Default::default()
                },
                auth,
            ))
            .await,
        tonic::Code::InvalidArgument,
        "TriggerWorkflow with invalid JSON input",
    );

    assert_eq!(
        count("SELECT count(*) FROM hatchet.workflows").await,
        workflows_before
    );
    assert_eq!(
        count("SELECT count(*) FROM hatchet.runs").await,
        runs_before
    );
    // Still serving.
    let resp = dispatcher
        .get_version(with_auth(GetVersionRequest {}, auth))
        .await;
    assert!(resp.is_ok(), "{resp:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn oversized_messages_are_refused_and_the_server_keeps_serving() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    let channel = server.channel().await;
    let big = proto::PushEventRequest {
        key: "big".into(),
        payload: format!("\"{}\"", "a".repeat(5 * 1024 * 1024)),
        ..Default::default()
    };

    // Over the 4 MiB limit on the wire.
    let mut plain = EventsServiceClient::new(channel.clone()).max_encoding_message_size(16 << 20);
    let status = plain
        .push(with_auth(big.clone(), Some(&bearer)))
        .await
        .expect_err("oversized");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    // Small on the wire, over the limit once decompressed (a gzip bomb).
    let mut gzip = EventsServiceClient::new(channel.clone())
        .send_compressed(Gzip)
        .max_encoding_message_size(16 << 20);
    let status = gzip
        .push(with_auth(big, Some(&bearer)))
        .await
        .expect_err("oversized after decompression");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    let mut dispatcher = DispatcherClient::new(channel);
    let resp = dispatcher
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await;
    assert!(resp.is_ok(), "{resp:?}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn frequent_client_keepalive_pings_are_tolerated() {
    let server = TestServer::start().await;
    let bearer = format!("bearer {}", server.token);
    // Far more aggressive than the SDK (10 s): a ping every 200 ms, also while idle.
    let channel = Endpoint::from_shared(format!("http://{}", server.grpc_addr))
        .unwrap()
        .http2_keep_alive_interval(Duration::from_millis(200))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .unwrap();
    let mut client = DispatcherClient::new(channel).send_compressed(Gzip);
    client
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A server enforcing a ping policy would have sent GOAWAY (too_many_pings) by now.
    client
        .get_version(with_auth(GetVersionRequest {}, Some(&bearer)))
        .await
        .expect("the connection survived ~15 idle pings");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_stops_both_listeners() {
    let server = TestServer::start().await;
    let (grpc_addr, http_addr) = (server.grpc_addr, server.http_addr);
    server
        .stop()
        .await
        .expect("run() returns Ok after shutdown");
    assert!(
        tokio::net::TcpStream::connect(grpc_addr).await.is_err(),
        "gRPC port still open"
    );
    assert!(
        tokio::net::TcpStream::connect(http_addr).await.is_err(),
        "HTTP port still open"
    );
}
