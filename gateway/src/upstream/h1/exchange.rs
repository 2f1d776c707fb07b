//! One exchange on a connection, up to the response head: the request is written while the
//! response is read, and the response takes the connection (and any body still being written).

use super::response::ResponseBody;
use super::{Conn, H1Error, Socket};
use crate::body::Body;
use crate::forwarding::{Forwarded, Forwarding};
use crate::http1::BodyWriter;
use crate::http1::client::{encode_request_head, parse_response, request_framing};
use crate::upstream::Endpoint;
use crate::upstream::pool::Pool;
use http::{Method, Request, Response, request};
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Instant;

/// The future of an exchange, ready with the response head.
pub(crate) struct Exchange {
    conn: Option<Conn>,
    /// The request being written; `None` once it all went out.
    upload: Option<BodyWriter>,
    /// The request head, kept while the request could still be sent elsewhere unsent.
    parts: Option<request::Parts>,
    head_request: bool,
    /// Handed to the response body with the connection (taken, not counted again).
    pool: Option<Pool>,
    /// A write that failed while an answer was still possible: the upstream stopped reading the
    /// request (it may answer early, say `413`, and close).
    write_error: Option<H1Error>,
    /// The first-byte timeout, counted again from the end of the upload when the client was
    /// slow to send it: the endpoint is not blamed for the client's pace.
    first_byte: std::time::Duration,
    /// Whether the upload ever waited for the client's body.
    waited_for_client: bool,
}

/// A failed exchange.
pub(crate) struct Failed {
    pub(crate) error: H1Error,
    /// The request, when none of it reached the upstream and its body was never read: it may be
    /// sent on another connection as it is.
    pub(crate) unsent: Option<Request<Body>>,
}

impl Exchange {
    /// Starts sending `request` to `endpoint` on `conn` (with `forwarding`'s headers written as
    /// it goes), to have its response head by `deadline`; the connection goes back to the
    /// endpoint's pool when the exchange ends cleanly.
    pub(crate) fn new(
        mut conn: Conn,
        request: Request<Body>,
        endpoint: &Endpoint,
        forwarding: Option<&Forwarding<'_>>,
        deadline: Instant,
        first_byte: std::time::Duration,
    ) -> Self {
        conn.arm(deadline);
        let (parts, body) = request.into_parts();
        let framing = request_framing(&parts, &body);
        let mut buffer = std::mem::take(&mut conn.write);
        let base_path = endpoint.base_path();
        match forwarding {
            Some(forwarding) => {
                let rewrite = Forwarded {
                    forwarding,
                    fallback_host: endpoint.host(),
                };
                encode_request_head(&parts, framing, base_path, &rewrite, &mut buffer);
            }
            None => encode_request_head(&parts, framing, base_path, &(), &mut buffer),
        }
        Self {
            conn: Some(conn),
            upload: Some(BodyWriter::new(buffer, body, framing)),
            head_request: parts.method == Method::HEAD,
            parts: Some(parts),
            pool: Some(endpoint.pool().clone()),
            write_error: None,
            first_byte,
            waited_for_client: false,
        }
    }

    /// The request back, if nothing of it was written and its body never polled.
    fn unsent(&mut self) -> Option<Request<Body>> {
        let upload = self.upload.as_mut()?;
        if upload.wrote() {
            return None;
        }
        let body = upload.take_unpolled_body()?;
        Some(Request::from_parts(self.parts.take()?, body))
    }

    fn fail(&mut self, error: H1Error) -> Poll<Result<Response<ResponseBody>, Failed>> {
        let unsent = self.unsent();
        self.conn = None;
        Poll::Ready(Err(Failed { error, unsent }))
    }
}

impl Future for Exchange {
    type Output = Result<Response<ResponseBody>, Failed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let conn = this
            .conn
            .as_mut()
            .expect("Exchange polled after completion");
        if let Some(upload) = this.upload.as_mut() {
            match upload.poll_write(cx, &mut Socket(&conn.stream)) {
                Poll::Ready(Ok(())) => {
                    conn.write = this.upload.take().expect("present").into_buffer();
                    if this.waited_for_client {
                        conn.arm(Instant::now() + this.first_byte);
                    }
                }
                Poll::Ready(Err(error)) => {
                    let error = H1Error::from(error);
                    if matches!(error, H1Error::RequestBody(_)) || !upload.wrote() {
                        return this.fail(error);
                    }
                    this.upload = None;
                    this.write_error = Some(error);
                }
                Poll::Pending => {
                    this.waited_for_client |= upload.waits_for_body();
                }
            }
        }
        loop {
            // Nothing read yet (the usual first poll, right after the request went out): no
            // head to look for.
            let parsed = if conn.read.is_empty() {
                Ok(None)
            } else {
                parse_response(&mut conn.read, this.head_request, &mut conn.names)
                    .map_err(H1Error::from)
            };
            match parsed {
                Ok(Some(head)) => {
                    let conn = this.conn.take().expect("present");
                    let keep_alive = head.keep_alive && this.write_error.is_none();
                    let body = ResponseBody::new(
                        conn,
                        &head,
                        keep_alive,
                        this.upload.take(),
                        this.pool.take().expect("present until the head arrives"),
                    );
                    return Poll::Ready(Ok(Response::from_parts(head.parts, body)));
                }
                Ok(None) => {}
                Err(error) => return this.fail(error),
            }
            let filled = match conn.poll_fill(cx) {
                Poll::Ready(filled) => filled,
                Poll::Pending => {
                    if conn.poll_deadline(cx).is_ready() {
                        if this.upload.as_ref().is_some_and(BodyWriter::waits_for_body) {
                            // The client is still sending, at a pace the body read timeout
                            // allows: the endpoint's time starts when the request is whole.
                            conn.arm(Instant::now() + this.first_byte);
                            return Poll::Pending;
                        }
                        return this.fail(H1Error::Timeout);
                    }
                    return Poll::Pending;
                }
            };
            match filled {
                Ok(0) => {
                    let error = this.write_error.take().unwrap_or(if conn.read.is_empty() {
                        H1Error::ClosedBeforeHead
                    } else {
                        H1Error::Invalid("connection closed inside the response head")
                    });
                    return this.fail(error);
                }
                Ok(_) => {}
                Err(error) => {
                    let error = this.write_error.take().unwrap_or(error.into());
                    return this.fail(error);
                }
            }
        }
    }
}
