# JVM flags shared by the server and client wrappers and by build.sh's CDS
# training runs (sourced). Start-up is most of a client's run time: C1 only,
# no perf-data file, no Netty JFR events, JVM logging on stderr. TLS uses the
# JDK's provider instead of netty-tcnative's BoringSSL, which has no P-521.
JAVA_FLAGS="-XX:TieredStopAtLevel=1 -XX:-UsePerfData -Xlog:disable -Xlog:all=warning:stderr -Dio.grpc.netty.shaded.io.netty.jfr.enabled=false -Dio.grpc.netty.shaded.io.netty.handler.ssl.noOpenSsl=true"
