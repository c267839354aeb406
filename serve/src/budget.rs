//! One budget of buffered request-body bytes per server, shared by every connection and every
//! HTTP/2 stream: a body takes its bytes from the budget as they arrive and gives them back once
//! its request is answered. At the budget a body waits (the peer's flow control then stops it)
//! until another request finishes, or until its own request deadline (408). So what the server
//! holds of request bodies is bounded by the budget, not by connections × streams × body limit.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

use crate::refusals::{Reason, Refusals};

/// The server's budget.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    bytes: Arc<Semaphore>,
    size: u32,
}

impl Budget {
    /// A budget of `bytes` (at most `u32::MAX`).
    pub(crate) fn new(bytes: u64) -> Budget {
        let size = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        Budget {
            bytes: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// Bytes not taken by any body now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// What one request holds of the budget; released when the last clone drops (the body once
/// read, and the request's future once answered).
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Arc<Mutex<Option<OwnedSemaphorePermit>>>);

impl Held {
    fn add(&self, permit: OwnedSemaphorePermit) {
        let mut held = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
    }
}

/// The wait for a frame's bytes.
type Wait = BoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>>;

/// A request body whose data frames are paid for from the budget before they are handed on.
pub(crate) struct Budgeted<B> {
    inner: B,
    budget: Budget,
    held: Held,
    refusals: Refusals,
    /// A frame received while the budget was spent, and the wait for its bytes.
    waiting: Option<(Frame<Bytes>, Wait)>,
}

impl<B> Budgeted<B> {
    pub(crate) fn new(inner: B, budget: Budget, held: Held, refusals: Refusals) -> Self {
        Budgeted {
            inner,
            budget,
            held,
            refusals,
            waiting: None,
        }
    }
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if let Some((frame, mut wait)) = this.waiting.take() {
            let Poll::Ready(permit) = wait.poll_unpin(cx) else {
                this.waiting = Some((frame, wait));
                return Poll::Pending;
            };
            // The semaphore is never closed; a failure would only mean no bytes were taken.
            if let Ok(permit) = permit {
                this.held.add(permit);
            }
            return Poll::Ready(Some(Ok(frame)));
        }
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let Some(len) = frame.data_ref().map(Bytes::len).filter(|n| *n > 0) else {
            return Poll::Ready(Some(Ok(frame)));
        };
        // A frame larger than the whole budget takes all of it rather than waiting forever.
        let n = u32::try_from(len).unwrap_or(u32::MAX).min(this.budget.size);
        match this.budget.bytes.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                this.held.add(permit);
                Poll::Ready(Some(Ok(frame)))
            }
            Err(_) => {
                this.refusals.count(Reason::BodyBudget);
                let wait = this.budget.bytes.clone().acquire_many_owned(n).boxed();
                this.waiting = Some((frame, wait));
                // Poll the wait once so this task is woken when bytes come back.
                Pin::new(this).poll_frame(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn body_of(
        chunks: &[usize],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = chunks
            .iter()
            .map(|n| Ok(Frame::data(Bytes::from(vec![b'x'; *n]))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn bytes_are_held_until_the_request_is_done_and_a_body_over_the_rest_waits() {
        let budget = Budget::new(1000);
        let refusals = Refusals::default();
        let first = Held::default();
        let body = Budgeted::new(
            body_of(&[400, 400]),
            budget.clone(),
            first.clone(),
            refusals.clone(),
        );
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 800);
        assert_eq!(
            budget.available(),
            200,
            "the read body still holds its bytes"
        );

        // A second body of 300 bytes cannot get them while the first request is held.
        let second = Held::default();
        let mut waiting = Budgeted::new(
            body_of(&[300]),
            budget.clone(),
            second.clone(),
            refusals.clone(),
        );
        let poll = futures::poll!(waiting.frame());
        assert!(poll.is_pending(), "the second body waits for the budget");
        assert_eq!(refusals.get(Reason::BodyBudget), 1);

        drop(first);
        let frame = waiting.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap().len(), 300);
        assert_eq!(budget.available(), 700);
        drop((waiting, second));
        assert_eq!(budget.available(), 1000, "every byte is given back");
    }
}
