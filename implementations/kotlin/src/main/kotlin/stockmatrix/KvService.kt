package stockmatrix

import io.grpc.Status
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
        validateKey(request.key)
        val (value, _) =
            store.get(request.key)
                ?: throw Status.NOT_FOUND.withDescription("key not found: ${request.key}").asException()
        return GetResponse.newBuilder().setValue(value).build()
    }

    override suspend fun put(request: PutRequest): Empty {
        validateKey(request.key)
        validateValue(request.value)
        store.put(request.key, request.value)
        return Empty.getDefaultInstance()
    }
}
