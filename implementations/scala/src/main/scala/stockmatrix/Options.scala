package stockmatrix

/** Parsed `--flag value` / `--switch` options, in order. */
final case class Options(pairs: Vector[(String, String)]) {
  def all(flag: String): Vector[String] = pairs.collect { case (`flag`, v) => v }
  def single(flag: String): Option[String] = all(flag).lastOption
  def has(flag: String): Boolean = pairs.exists(_._1 == flag)
}

object Options {

  /** Reads options up to the first argument that is not one; returns them and the rest. */
  def parse(args: List[String], valued: Set[String], switches: Set[String]): Either[String, (Options, List[String])] = {
    @annotation.tailrec
    def loop(rest: List[String], acc: Vector[(String, String)]): Either[String, (Options, List[String])] =
      rest match {
        case a :: tail if a.startsWith("--") && a.contains('=') && valued(a.takeWhile(_ != '=')) =>
          loop(tail, acc :+ (a.takeWhile(_ != '=') -> a.dropWhile(_ != '=').drop(1)))
        case a :: v :: tail if valued(a)             => loop(tail, acc :+ (a -> v))
        case a :: Nil if valued(a)                   => Left(s"$a needs a value")
        case a :: tail if switches(a)                => loop(tail, acc :+ (a -> ""))
        case a :: _ if a.startsWith("-") && a != "-" => Left(s"unknown option $a")
        case _                                       => Right((Options(acc), rest))
      }
    loop(args, Vector.empty)
  }
}
