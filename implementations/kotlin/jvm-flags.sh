# JVM flags shared by the server and client wrappers and by build.sh's CDS
# training runs (sourced; the archives record what these flags load, so the
# two must match). Start-up is most of a client's run time: C1 only, no
# perf-data file, no Netty JFR events (grpc-netty-shaded's FlightRecorder
# check would set up JFR's event classes in every process; nothing records
# them), JVM logging on stderr, never on stdout.
# Netty turns a PEM key into an in-memory PKCS#12 key store for each SSL
# context, encrypting and decrypting the key with 10,000 PBKDF2 rounds each
# way (JFR: ~0.15 s of a client's CPU with mtls); the store never leaves the
# process, so one round.
JAVA_FLAGS="-XX:TieredStopAtLevel=1 -XX:-UsePerfData -Xlog:disable -Xlog:all=warning:stderr -Dio.grpc.netty.shaded.io.netty.jfr.enabled=false -Dkeystore.pkcs12.keyPbeIterationCount=1"
# Clients also use the serial collector: a client process runs a pair's whole
# script (4 MiB messages included) and with the default G1 it grew to ~1.3 GiB
# resident and spent a third more CPU.
JAVA_CLIENT_FLAGS="-XX:+UseSerialGC"
# Servers too: one serves every client of a run's TLS mode and key type, and
# with G1 the Java one peaked at 0.9 GiB resident; serial: 0.73 GiB, a little
# less CPU.
JAVA_SERVER_FLAGS="-XX:+UseSerialGC"
