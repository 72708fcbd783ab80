package stockmatrix

import proto.KVGrpcKt
import proto.Kv.Empty
import proto.Kv.GetRequest
import proto.Kv.GetResponse
import proto.Kv.PutRequest

/** The legacy `proto.KV` service (go-plugin's kvproto) over the same store as `stock.v1.Stock`. */
class KvService(
    private val store: Store,
) : KVGrpcKt.KVCoroutineImplBase() {
    override suspend fun get(request: GetRequest): GetResponse {
        val (value, _) = store.require(request.key)
        return GetResponse.newBuilder().setValue(value).build()
    }

    override suspend fun put(request: PutRequest): Empty {
        store.checkedPut(request.key, request.value)
        return Empty.getDefaultInstance()
    }
}
