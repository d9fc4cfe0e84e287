//! Bearer-token authentication for every gRPC call, as a tower layer around the tonic router.
//!
//! A tonic `Interceptor` would be simpler but is synchronous, and verification needs the database (the tenant's
//! secret, the revocation list). This layer runs before any service: on success it inserts the [`TenantId`] into
//! the HTTP request extensions, which tonic hands to handlers as `Request::extensions()`; on failure it answers
//! UNAUTHENTICATED (or UNAVAILABLE if the database is down) without calling the service.

use super::{AuthError, Authenticator, BearerToken, TenantId};
use crate::proto::ResponseStream;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Layer that wraps a gRPC service with [`GrpcAuth`].
#[derive(Clone, Debug)]
pub(crate) struct GrpcAuthLayer {
    auth: Arc<Authenticator>,
}

impl GrpcAuthLayer {
    /// Authenticates with `auth`.
    pub(crate) fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcAuth {
            inner,
            auth: self.auth.clone(),
        }
    }
}

/// The service produced by [`GrpcAuthLayer`].
#[derive(Clone, Debug)]
pub(crate) struct GrpcAuth<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The clone is not guaranteed ready; take the instance poll_ready was called on and leave the clone behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let header = req
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            match auth.authenticate_header(header).await {
                Ok((tenant, token)) => {
                    req.extensions_mut().insert(tenant);
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(err) => Ok(status_for(err).into_http()),
            }
        })
    }
}

fn status_for(err: AuthError) -> tonic::Status {
    match err {
        AuthError::Backend(inner) => inner.into(),
        other => tonic::Status::unauthenticated(other.to_string()),
    }
}

/// The tenant the auth layer attached to this request.
///
/// Every gRPC handler starts with this; it only fails if a service was mounted without [`GrpcAuthLayer`], which is
/// a server bug, reported as UNAUTHENTICATED rather than serving an unauthenticated caller.
pub(crate) fn tenant_of<T>(req: &tonic::Request<T>) -> Result<TenantId, tonic::Status> {
    req.extensions()
        .get::<TenantId>()
        .copied()
        .ok_or_else(|| tonic::Status::unauthenticated("missing bearer token"))
}

/// The bearer token the auth layer verified for this request (see [`tenant_of`] for why it cannot be missing).
pub(crate) fn bearer_of<T>(req: &tonic::Request<T>) -> Result<BearerToken, tonic::Status> {
    req.extensions()
        .get::<BearerToken>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("missing bearer token"))
}

/// Wraps a long-lived response stream of this request so it ends with UNAUTHENTICATED once the request's token is
/// revoked or expires (see [`Authenticator::guard_stream`]).
pub(crate) fn guard_stream<T: Send + 'static, R>(
    auth: &Arc<Authenticator>,
    req: &tonic::Request<R>,
    stream: ResponseStream<T>,
) -> Result<ResponseStream<T>, tonic::Status> {
    Ok(auth.guard_stream(&bearer_of(req)?, stream))
}
