//! Trade's order book: the sequence and net position per symbol of one
//! stream. The `shared-trade-book` fault shares one book between the streams
//! open at the same time, as a servicer that keeps per-call state in itself.
use crate::contract::proto::stock::{Side, TradeFill, TradeOrder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct Book {
    sequence: i64,
    positions: HashMap<String, i64>,
    /// Streams using this book (the shared one only).
    open: usize,
}

impl Book {
    /// Books one order: its sequence number and the symbol's new net position.
    pub fn fill(&mut self, order: &TradeOrder) -> (i64, i64) {
        self.sequence += 1;
        let signed = if order.side == Side::Buy as i32 {
            order.quantity
        } else {
            -order.quantity
        };
        let position = self.positions.entry(order.symbol.clone()).or_default();
        *position += signed;
        (self.sequence, *position)
    }
}

/// The fill of a booked order: the order echoed, with the sequence number
/// and net position `Book::fill` gave it.
pub fn filled(order: TradeOrder, (sequence, net_position): (i64, i64)) -> TradeFill {
    TradeFill {
        order_id: order.order_id,
        symbol: order.symbol,
        side: order.side,
        quantity: order.quantity,
        price_cents: order.price_cents,
        sequence,
        net_position,
    }
}

/// A stream's hold on the shared book; the book starts afresh once no
/// stream holds it.
pub struct SharedHold(Arc<Mutex<Book>>);

impl SharedHold {
    pub fn new(book: Arc<Mutex<Book>>) -> SharedHold {
        book.lock().unwrap().open += 1;
        SharedHold(book)
    }

    pub fn fill(&self, order: &TradeOrder) -> (i64, i64) {
        self.0.lock().unwrap().fill(order)
    }
}

impl Drop for SharedHold {
    fn drop(&mut self) {
        let mut book = self.0.lock().unwrap();
        book.open -= 1;
        if book.open == 0 {
            *book = Book::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(side: Side, quantity: i64) -> TradeOrder {
        TradeOrder {
            symbol: "S".into(),
            side: side as i32,
            quantity,
            ..Default::default()
        }
    }

    #[test]
    fn a_book_numbers_fills_and_nets_positions() {
        let mut b = Book::default();
        assert_eq!(b.fill(&order(Side::Buy, 3)), (1, 3));
        assert_eq!(b.fill(&order(Side::Sell, 5)), (2, -2));
    }

    #[test]
    fn the_shared_book_mixes_open_streams_and_resets_when_none_is_left() {
        let shared = Arc::new(Mutex::new(Book::default()));
        let a = SharedHold::new(shared.clone());
        let b = SharedHold::new(shared.clone());
        assert_eq!(a.fill(&order(Side::Buy, 1)), (1, 1));
        assert_eq!(b.fill(&order(Side::Buy, 1)), (2, 2));
        drop((a, b));
        assert_eq!(SharedHold::new(shared).fill(&order(Side::Buy, 1)), (1, 1));
    }
}
