//! The `strict-lock-step` peer's Trade: each fill goes out a while after its
//! order, and the next order arriving while a fill is owed ends the stream
//! FAILED_PRECONDITION. A client that waits for each fill before it sends on
//! never sees that; one that sends every order before it reads (a buffered,
//! half-duplex call) always does, whatever the load, since its orders are all
//! out before the first fill is. A half-close may come at any time: after
//! its last order, a client need not wait for the fill to half-close.

use super::answer::frame;
use super::{grpc_response, next_message, status};
use crate::contract::proto::stock::TradeOrder;
use crate::reference::book::{filled, Book};
use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use h2::server::SendResponse;
use h2::RecvStream;
use prost::Message;
use std::time::Duration;

/// How long after its order a fill goes out.
const FILL_AFTER: Duration = Duration::from_millis(50);

/// What the client sent so far and has not been read as an order.
struct Inbox {
    body: RecvStream,
    buf: BytesMut,
    ended: bool,
}

impl Inbox {
    fn take(&mut self, chunk: Bytes) {
        let _ = self.body.flow_control().release_capacity(chunk.len());
        self.buf.extend_from_slice(&chunk);
    }

    /// The next order's bytes, waiting for them; None once the stream ended.
    async fn next(&mut self) -> Result<Option<Bytes>, h2::Error> {
        loop {
            if let Some(m) = next_message(&mut self.buf)? {
                return Ok(Some(m));
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.data().await {
                Some(chunk) => self.take(chunk?),
                None => self.ended = true,
            }
        }
    }

    /// Reads what has already arrived, without waiting: true when bytes of
    /// another message did.
    fn next_order_arrived(&mut self) -> Result<bool, h2::Error> {
        while !self.ended {
            match self.body.data().now_or_never() {
                Some(Some(chunk)) => self.take(chunk?),
                Some(None) => self.ended = true,
                None => break,
            }
        }
        Ok(!self.buf.is_empty())
    }
}

pub(super) async fn trade(body: RecvStream, mut respond: SendResponse<Bytes>) {
    let Ok(mut out) = respond.send_response(grpc_response(), false) else {
        return;
    };
    let mut inbox = Inbox {
        body,
        buf: BytesMut::new(),
        ended: false,
    };
    let mut book = Book::default();
    let end = loop {
        let order = match inbox.next().await {
            Ok(Some(bytes)) => match TradeOrder::decode(bytes) {
                Ok(order) => order,
                Err(e) => break status(13, &format!("peer: bad TradeOrder: {e}")),
            },
            Ok(None) => break status(0, ""),
            Err(_) => return,
        };
        tokio::time::sleep(FILL_AFTER).await;
        match inbox.next_order_arrived() {
            Ok(false) => {}
            Ok(true) => {
                let message = format!(
                    "peer: the next order came before the fill of order {:?} went out (a Trade step is lock-step)",
                    order.order_id
                );
                break status(9, &message);
            }
            Err(_) => return,
        }
        let booking = book.fill(&order);
        if out.send_data(frame(&filled(order, booking)), false).is_err() {
            return;
        }
    };
    let _ = out.send_trailers(end);
}
