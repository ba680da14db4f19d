-- wrk: POST the body in $BODY (default "[2, 40]") as JSON.
wrk.method = "POST"
wrk.body = os.getenv("BODY") or "[2, 40]"
wrk.headers["Content-Type"] = "application/json"
