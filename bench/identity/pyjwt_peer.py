#!/usr/bin/env python3
"""Peer benchmark: PyJWT (with `cryptography`, i.e. OpenSSL) verifying the same kind of token
stepguard verifies: RS256-2048 and ES256, signature + iss + aud + exp/nbf/iat checks.
Prints one BENCH line per algorithm with the median of ROUNDS rounds of SECONDS each."""
import json, os, statistics, time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SECONDS = float(os.environ.get("STEPGUARD_BENCH_SECONDS", "2"))
ROUNDS = int(os.environ.get("STEPGUARD_BENCH_ROUNDS", "5"))


def bench(alg, private_key):
    now = int(time.time())
    claims = {"iss": "https://token.test.local", "aud": "stepguard", "sub": "repo:acme/app:ref:refs/heads/main",
              "iat": now - 60, "nbf": now - 60, "exp": now + 540, "repository": "acme/app", "ref": "refs/heads/main"}
    token = jwt.encode(claims, private_key, algorithm=alg, headers={"kid": "k1"})
    public_key = private_key.public_key()
    options = {"require": ["exp", "iat", "iss", "aud", "sub"]}
    rates = []
    for _ in range(ROUNDS):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < SECONDS:
            for _ in range(100):
                jwt.decode(token, public_key, algorithms=[alg], audience="stepguard",
                           issuer="https://token.test.local", options=options, leeway=30)
            count += 100
        rates.append(count / (time.perf_counter() - start))
    print("BENCH " + json.dumps({"impl": "pyjwt " + jwt.__version__, "alg": alg,
                                 "median_per_second": int(statistics.median(rates)),
                                 "rounds": [int(r) for r in sorted(rates)]}))


bench("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))
bench("ES256", ec.generate_private_key(ec.SECP256R1()))
