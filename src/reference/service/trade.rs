//! Trade, the bidirectional method of the reference server: one fill per
//! order as it arrives, and the faults that bend it.
use super::{enter, EventStream, StockService};
use crate::contract::proto::stock::{Side, TradeFill, TradeOrder};
use crate::reference::book::{filled, Book, SharedHold};
use crate::reference::faults::Fault;
use crate::reference::rich::{bad_field, without_details};
use std::borrow::Cow;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

impl StockService {
    /// Trade: one fill per order as it arrives (lock-step), with the
    /// faults that bend it.
    pub(super) async fn run_trade(
        &self,
        req: Request<Streaming<TradeOrder>>,
    ) -> Result<Response<EventStream<TradeFill>>, Status> {
        let mut hooks = enter(&req, false).await?;
        if self.faults.contains(&Fault::TradeForcedWithoutDetails) {
            hooks.fail = hooks.fail.as_ref().map(without_details);
        }
        let fail_after_reading = self.faults.contains(&Fault::TradeFailAfterReading);
        let mut orders = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let hold = self.faults.contains(&Fault::HoldFills);
        let shared = self
            .faults
            .contains(&Fault::SharedTradeBook)
            .then(|| SharedHold::new(self.shared_book.clone()));
        let with_details = !self.faults.contains(&Fault::NoDetailsOnStreams);
        let unspecified_buys = self.faults.contains(&Fault::UnspecifiedSideBuys);
        let through_double = self.faults.contains(&Fault::Int64ThroughDouble);
        let case_folded = self.faults.contains(&Fault::SymbolsCaseFolded);
        let unnamed_unspecified = self.faults.contains(&Fault::UnnamedSideUnspecified);
        let price_checked = self.faults.contains(&Fault::PriceMustBePositive);
        tokio::spawn(async move {
            let mut held = Vec::new();
            let mut book = Book::default();
            let mut fills = 0u64;
            loop {
                let read_first = match fail_after_reading {
                    true => Some(orders.message().await),
                    false => None,
                };
                if let Some(status) = hooks.fail.as_ref().filter(|_| fills == hooks.fail_after) {
                    if !(fail_after_reading && matches!(read_first, Some(Ok(None)))) {
                        let _ = tx.send(Err(status.clone())).await;
                    }
                    return;
                }
                let read = match read_first {
                    Some(read) => read,
                    None => orders.message().await,
                };
                let order = match read {
                    Ok(Some(o)) => o,
                    Ok(None) => {
                        for fill in held {
                            let _ = tx.send(Ok(fill)).await;
                        }
                        return;
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                };
                if price_checked && order.price_cents <= 0 {
                    let msg = format!("order {:?}: price must be > 0", order.order_id);
                    let _ = tx.send(Err(Status::invalid_argument(msg))).await;
                    return;
                }
                if order.quantity <= 0 {
                    let msg = format!(
                        "order {:?}: quantity must be > 0, got {}",
                        order.order_id, order.quantity
                    );
                    let status = if with_details {
                        bad_field("quantity", msg)
                    } else {
                        Status::invalid_argument(msg)
                    };
                    let _ = tx.send(Err(status)).await;
                    return;
                }
                fills += 1;
                let order = if through_double {
                    TradeOrder {
                        quantity: order.quantity as f64 as i64,
                        price_cents: order.price_cents as f64 as i64,
                        ..order
                    }
                } else {
                    order
                };
                // The order as the faults book it (the fill still names it as sent).
                let mut booked = Cow::Borrowed(&order);
                if unspecified_buys && order.side == Side::Unspecified as i32 {
                    booked.to_mut().side = Side::Buy as i32;
                }
                if case_folded {
                    booked.to_mut().symbol = order.symbol.to_uppercase();
                }
                let booking = match &shared {
                    Some(hold) => hold.fill(&booked),
                    None => book.fill(&booked),
                };
                let mut fill = filled(order, booking);
                if unnamed_unspecified && Side::try_from(fill.side).is_err() {
                    fill.side = Side::Unspecified as i32;
                }
                if hold {
                    held.push(fill);
                } else if tx.send(Ok(fill)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
