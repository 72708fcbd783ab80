package stockmatrix

import com.google.protobuf.ByteString
import io.grpc.stub.{ServerCallStreamObserver, StreamObserver}
import io.grpc.StatusException
import stock.v1.StockGrpc
import stock.v1.StockOuterClass._

import scala.collection.mutable
import scala.jdk.CollectionConverters._

/** stock.v1.Stock over one [[Store]]; the hooks come from [[Hooks.Interceptor]]. */
final class StockService(store: Store, stack: String) extends StockGrpc.StockImplBase {

  /** Ends the call with `error` (its rich details go out in the trailers). */
  private def fail[T](obs: StreamObserver[T], error: StatusException): Unit = obs.onError(error)

  /** Runs a unary method: the fail hook first, then `body` (Left = error). */
  private def unary[T](obs: StreamObserver[T])(body: => Either[StatusException, T]): Unit =
    Hooks.current.fail.map(Rich.forced).toLeft(()).flatMap(_ => body) match {
      case Right(resp) => obs.onNext(resp); obs.onCompleted()
      case Left(error) => fail(obs, error)
    }

  override def get(req: GetRequest, obs: StreamObserver[GetResponse]): Unit = unary(obs) {
    store.lookup(req.getKey).map { case (value, version) =>
      // x-stock-repeat-value: the stored value that many times over (a response past 4 MiB).
      val repeated = ByteString.copyFrom(Seq.fill(Hooks.current.repeatValue)(value).asJava)
      GetResponse.newBuilder().setValue(repeated).setVersion(version).build()
    }
  }

  override def put(req: PutRequest, obs: StreamObserver[Empty]): Unit = unary(obs) {
    store.checkedPut(req.getKey, req.getValue).map(_ => Empty.getDefaultInstance)
  }

  override def inventory(req: Empty, obs: StreamObserver[InventoryStatus]): Unit = unary(obs) {
    val (keys, bytes) = store.totals
    Right(
      InventoryStatus
        .newBuilder()
        .setKeyCount(keys)
        .setTotalValueBytes(bytes)
        .setLanguage("scala")
        .setStack(stack)
        .build()
    )
  }

  override def monitor(req: WatchRequest, obs: StreamObserver[WatchEvent]): Unit = {
    val hooks = Hooks.current
    val call = obs.asInstanceOf[ServerCallStreamObserver[WatchEvent]]
    if (hooks.fail.isDefined && hooks.failAfter == 0) fail(obs, Rich.forced(hooks.fail.get))
    else if (req.getPattern.isEmpty) fail(obs, Rich.badField("pattern", "pattern must not be empty"))
    else if (req.getMaxEvents < 0) fail(obs, Rich.badField("max_events", "max_events must not be negative"))
    else {
      // Every delivery happens under the store lock (snapshot first, then puts).
      var sent = 0L
      var done = false
      var watch: Option[Watch] = None
      def finish(): Unit = { done = true; watch.foreach(store.unwatch) }
      def deliver(ev: WatchEvent): Unit = if (!done) {
        call.onNext(ev)
        sent += 1
        if (hooks.fail.isDefined && sent == hooks.failAfter) { finish(); fail(obs, Rich.forced(hooks.fail.get)) }
        else if (req.getMaxEvents > 0 && sent == req.getMaxEvents) { finish(); call.onCompleted() }
      }
      call.setOnCancelHandler(() => store.synchronized(finish()))
      store.synchronized {
        watch = Some(store.watch(req.getPattern, req.getIncludeExisting, deliver))
        if (done) finish()
      }
    }
  }

  override def batch(obs: StreamObserver[BatchSummary]): StreamObserver[BatchItem] = {
    val hooks = Hooks.current
    val items = Vector.newBuilder[BatchItem]
    new StreamObserver[BatchItem] {
      override def onNext(item: BatchItem): Unit = items += item
      override def onError(t: Throwable): Unit = ()
      override def onCompleted(): Unit =
        hooks.fail.map(Rich.forced).toLeft(()).flatMap(_ => store.batch(items.result())) match {
          case Right(summary) => obs.onNext(summary); obs.onCompleted()
          case Left(error)    => fail(obs, error)
        }
    }
  }

  override def trade(obs: StreamObserver[TradeFill]): StreamObserver[TradeOrder] = {
    val hooks = Hooks.current
    var done = false
    var sequence = 0L
    val positions = mutable.HashMap.empty[String, Long]
    def failIfDue(): Unit = hooks.fail.filter(_ => sequence == hooks.failAfter).foreach { status =>
      done = true
      fail(obs, Rich.forced(status))
    }
    failIfDue()
    new StreamObserver[TradeOrder] {
      override def onNext(order: TradeOrder): Unit = if (!done) {
        if (order.getQuantity <= 0) {
          done = true
          fail(
            obs,
            Rich.badField("quantity", s"order \"${order.getOrderId}\": quantity must be > 0, got ${order.getQuantity}")
          )
        } else {
          sequence += 1
          val signed = if (order.getSide == Side.BUY) order.getQuantity else -order.getQuantity
          val position = positions.getOrElse(order.getSymbol, 0L) + signed
          positions.update(order.getSymbol, position)
          obs.onNext(
            TradeFill
              .newBuilder()
              .setOrderId(order.getOrderId)
              .setSymbol(order.getSymbol)
              .setSideValue(order.getSideValue)
              .setQuantity(order.getQuantity)
              .setPriceCents(order.getPriceCents)
              .setSequence(sequence)
              .setNetPosition(position)
              .build()
          )
          failIfDue()
        }
      }
      override def onError(t: Throwable): Unit = done = true
      override def onCompleted(): Unit = if (!done) { done = true; obs.onCompleted() }
    }
  }
}
