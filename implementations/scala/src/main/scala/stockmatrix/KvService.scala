package stockmatrix

import io.grpc.stub.StreamObserver
import io.grpc.StatusException
import proto.KVGrpc
import proto.Kv.{Empty, GetRequest, GetResponse, PutRequest}

/** The legacy proto.KV service (go-plugin's kvproto) over the same [[Store]] as stock.v1.Stock. */
final class KvService(store: Store) extends KVGrpc.KVImplBase {

  private def reply[T](obs: StreamObserver[T])(result: Either[StatusException, T]): Unit = result match {
    case Right(resp) => obs.onNext(resp); obs.onCompleted()
    case Left(error) => obs.onError(error)
  }

  override def get(req: GetRequest, obs: StreamObserver[GetResponse]): Unit = reply(obs) {
    store.lookup(req.getKey).map { case (value, _) => GetResponse.newBuilder().setValue(value).build() }
  }

  override def put(req: PutRequest, obs: StreamObserver[Empty]): Unit = reply(obs) {
    store.checkedPut(req.getKey, req.getValue).map(_ => Empty.getDefaultInstance)
  }
}
