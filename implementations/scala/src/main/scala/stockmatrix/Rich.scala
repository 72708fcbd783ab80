package stockmatrix

import com.google.protobuf.{Any, Message}
import com.google.rpc.{BadRequest, ErrorInfo}
import io.grpc.protobuf.StatusProto
import io.grpc.{Status, StatusException}

/**
 * Rich errors (grpc-java's StatusProto, com.google.rpc messages): the google.rpc.Status goes out in
 * `grpc-status-details-bin`, its code and message those of the call's status.
 */
object Rich {
  private def rich(code: Status.Code, message: String, detail: Message): StatusException =
    StatusProto.toStatusException(
      com.google.rpc.Status
        .newBuilder()
        .setCode(code.value)
        .setMessage(message)
        .addDetails(Any.pack(detail))
        .build()
    )

  /** INVALID_ARGUMENT for a refused request, with a google.rpc.BadRequest naming `field`. */
  def badField(field: String, description: String): StatusException =
    rich(
      Status.Code.INVALID_ARGUMENT,
      description,
      BadRequest
        .newBuilder()
        .addFieldViolations(BadRequest.FieldViolation.newBuilder().setField(field).setDescription(description))
        .build()
    )

  /** The failure `x-stock-fail` forces, with a google.rpc.ErrorInfo {reason FORCED, domain stock.v1}. */
  def forced(status: Status): StatusException =
    rich(
      status.getCode,
      Option(status.getDescription).getOrElse(""),
      ErrorInfo.newBuilder().setReason("FORCED").setDomain("stock.v1").build()
    )
}
