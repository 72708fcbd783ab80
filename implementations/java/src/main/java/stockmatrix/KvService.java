package stockmatrix;

import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import proto.KVGrpc;
import proto.Kv.Empty;
import proto.Kv.GetRequest;
import proto.Kv.GetResponse;
import proto.Kv.PutRequest;
import stock.v1.StockOuterClass.WatchEvent;

/** The legacy proto.KV service (go-plugin's kvproto) over the same store as stock.v1.Stock. */
final class KvService extends KVGrpc.KVImplBase {
  private final Store store;

  KvService(Store store) {
    this.store = store;
  }

  @Override
  public void get(GetRequest req, StreamObserver<GetResponse> obs) {
    try {
      WatchEvent e = store.require(req.getKey());
      obs.onNext(GetResponse.newBuilder().setValue(e.getValue()).build());
      obs.onCompleted();
    } catch (StatusRuntimeException e) {
      obs.onError(e);
    }
  }

  @Override
  public void put(PutRequest req, StreamObserver<Empty> obs) {
    try {
      store.checkedPut(req.getKey(), req.getValue());
      obs.onNext(Empty.getDefaultInstance());
      obs.onCompleted();
    } catch (StatusRuntimeException e) {
      obs.onError(e);
    }
  }
}
