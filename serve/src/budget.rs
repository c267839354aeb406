//! One budget of buffered request-body bytes per server, shared by every connection and every
//! HTTP/2 stream. A request reserves its whole body from the budget before any of it is read
//! (its Content-Length, or the body limit when it declares none) and gives it back once
//! answered. At the budget a request waits until others finish, or until its own deadline (408).
//! Reserving the whole body up front, not frame by frame, means half-sent bodies can never hold
//! the budget between them while each waits for the rest. So what the server holds of request
//! bodies is bounded by the budget, not by connections × streams × body limit.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The server's budget.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    bytes: Arc<Semaphore>,
    size: u32,
}

/// Bytes reserved for one request; given back when dropped.
pub(crate) type Reserved = OwnedSemaphorePermit;

impl Budget {
    /// A budget of `bytes` (at most `u32::MAX`).
    pub(crate) fn new(bytes: u64) -> Budget {
        let size = u32::try_from(bytes.max(1)).unwrap_or(u32::MAX);
        Budget {
            bytes: Arc::new(Semaphore::new(size as usize)),
            size,
        }
    }

    /// `n` bytes now, if the budget has them.
    pub(crate) fn try_reserve(&self, n: u64) -> Option<Reserved> {
        self.bytes
            .clone()
            .try_acquire_many_owned(self.clamp(n))
            .ok()
    }

    /// `n` bytes, once the budget has them.
    pub(crate) async fn reserve(&self, n: u64) -> Option<Reserved> {
        self.bytes
            .clone()
            .acquire_many_owned(self.clamp(n))
            .await
            .ok()
    }

    /// A body larger than the whole budget takes all of it rather than waiting forever.
    fn clamp(&self, n: u64) -> u32 {
        u32::try_from(n).unwrap_or(u32::MAX).min(self.size)
    }

    /// Bytes not reserved now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_waits_until_earlier_ones_are_answered() {
        let budget = Budget::new(1000);
        let first = budget.try_reserve(800).unwrap();
        assert!(budget.try_reserve(300).is_none(), "only 200 bytes are left");
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(300).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        let second = waiting.await.unwrap().unwrap();
        assert_eq!(budget.available(), 700);
        drop(second);
        let whole = budget.try_reserve(5000).unwrap();
        assert_eq!(
            budget.available(),
            0,
            "a body over the budget takes all of it"
        );
        drop(whole);
        assert_eq!(budget.available(), 1000, "every byte is given back");
    }
}
