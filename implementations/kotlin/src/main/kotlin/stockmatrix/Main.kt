package stockmatrix

import kotlin.system.exitProcess

/** A command-line or input error: the process exits 2. */
class UsageException(
    message: String,
) : Exception(message)

/** Parsed `--name value` / `--name=value` / `--flag` options and the remaining arguments. */
class Options(
    private val values: Map<String, List<String>>,
    val flags: Set<String>,
    val rest: List<String>,
) {
    fun single(name: String): String? = values[name]?.last()

    fun all(name: String): List<String> = values[name] ?: emptyList()
}

/** Reads options up to the first positional argument (or everywhere, with [anywhere]). */
fun parseOptions(
    args: List<String>,
    valued: Set<String>,
    flags: Set<String>,
    anywhere: Boolean = false,
): Options {
    val values = LinkedHashMap<String, MutableList<String>>()
    val seen = HashSet<String>()
    val rest = ArrayList<String>()
    var i = 0
    while (i < args.size) {
        val arg = args[i]
        if (!arg.startsWith("--") || arg == "--") {
            if (!anywhere) break
            rest.add(arg)
            i++
            continue
        }
        val name = arg.substring(2).substringBefore('=')
        val inline = if (arg.contains('=')) arg.substringAfter('=') else null
        when (name) {
            in flags -> {
                seen.add(name)
            }

            in valued -> {
                val value = inline ?: args.getOrNull(++i) ?: throw UsageException("option --$name needs a value")
                values.getOrPut(name) { ArrayList() }.add(value)
            }

            else -> {
                throw UsageException("unknown option --$name")
            }
        }
        i++
    }
    rest.addAll(args.subList(minOf(i, args.size), args.size))
    return Options(values, seen, rest)
}

fun main(args: Array<String>) {
    val code =
        try {
            when (args.firstOrNull()) {
                "server" -> runServer(args.drop(1))
                "client" -> runClient(args.drop(1))
                else -> throw UsageException("usage: stock server|client [OPTIONS]")
            }
        } catch (e: UsageException) {
            System.err.println("error: ${e.message}")
            2
        } catch (e: Exception) {
            System.err.println("error: $e")
            1
        }
    exitProcess(code)
}
