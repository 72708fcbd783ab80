package stockmatrix

import com.google.protobuf.Any
import com.google.rpc.BadRequest
import com.google.rpc.ErrorInfo
import io.grpc.Status
import io.grpc.StatusException
import io.grpc.protobuf.StatusProto

/**
 * Rich errors (grpc-java's StatusProto, com.google.rpc messages): the google.rpc.Status goes out in
 * `grpc-status-details-bin`, its code and message those of the call's status.
 */
private fun rich(
    code: Status.Code,
    message: String,
    detail: com.google.protobuf.Message,
): StatusException =
    StatusProto.toStatusException(
        com.google.rpc.Status
            .newBuilder()
            .setCode(code.value())
            .setMessage(message)
            .addDetails(Any.pack(detail))
            .build(),
    )

/** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming [field]. */
fun badField(
    field: String,
    description: String,
): StatusException =
    rich(
        Status.Code.INVALID_ARGUMENT,
        description,
        BadRequest
            .newBuilder()
            .addFieldViolations(BadRequest.FieldViolation.newBuilder().setField(field).setDescription(description))
            .build(),
    )

/** The failure `x-stock-fail` forces, with a google.rpc.ErrorInfo {reason FORCED, domain stock.v1}. */
fun forced(status: Status): StatusException =
    rich(
        status.code,
        status.description ?: "",
        ErrorInfo
            .newBuilder()
            .setReason("FORCED")
            .setDomain("stock.v1")
            .build(),
    )
