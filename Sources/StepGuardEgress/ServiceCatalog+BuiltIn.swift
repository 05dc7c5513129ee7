// Generated from rules/services/*.yaml by bench/egress/gen-catalog.sh; a test keeps them equal.
let builtInServiceYAML: [String: String] = [
    "aws-kms": #"""
    # AWS Key Management Service: signing and decryption with managed keys (JSON protocol, X-Amz-Target).
    name: aws-kms
    description: AWS Key Management Service
    hosts: ["kms.*.amazonaws.com", "kms-fips.*.amazonaws.com"]
    sensitive:
      - { methods: [POST], paths: ["/"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: query, name: X-Amz-Credential }
    """#,
    "aws-secretsmanager": #"""
    # AWS Secrets Manager.
    name: aws-secretsmanager
    description: AWS Secrets Manager
    hosts: ["secretsmanager.*.amazonaws.com", "secretsmanager-fips.*.amazonaws.com"]
    sensitive:
      - { methods: [POST], paths: ["/"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: query, name: X-Amz-Credential }
    """#,
    "aws-ssm": #"""
    # AWS Systems Manager (Parameter Store).
    name: aws-ssm
    description: AWS Systems Manager Parameter Store
    hosts: ["ssm.*.amazonaws.com", "ssm-fips.*.amazonaws.com"]
    sensitive:
      - { methods: [POST], paths: ["/"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: query, name: X-Amz-Credential }
    """#,
    "aws-sts": #"""
    # AWS Security Token Service: exchanges credentials or web identity tokens for role sessions.
    name: aws-sts
    description: AWS Security Token Service
    hosts: [sts.amazonaws.com, "sts.*.amazonaws.com", "sts-fips.*.amazonaws.com"]
    sensitive:
      - { methods: [GET, POST], paths: ["/*"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: query, name: X-Amz-Credential }
      - { in: query, name: WebIdentityToken }
      - { in: form, name: WebIdentityToken }
    """#,
    "azure-keyvault": #"""
    # Azure Key Vault: secrets, keys and certificates.
    name: azure-keyvault
    description: Azure Key Vault
    hosts: ["*.vault.azure.net", "*.vault.azure.cn", "*.vault.usgovcloudapi.net"]
    sensitive:
      - { methods: [GET, POST, PUT], paths: ["/secrets/*", "/keys/*", "/certificates/*"] }
    credentials:
      - { in: header, name: Authorization }
    """#,
    "container-registry-push": #"""
    # OCI registry pushes (blob uploads and manifest PUTs) on the common registries.
    name: container-registry-push
    description: Container registry push (OCI distribution API)
    hosts: [ghcr.io, registry-1.docker.io, "*.pkg.dev", "*.gcr.io", gcr.io, "*.dkr.ecr.*.amazonaws.com", "*.azurecr.io", quay.io]
    sensitive:
      - { methods: [POST, PUT, PATCH, DELETE], paths: ["/v2/*"] }
    credentials:
      - { in: header, name: Authorization }
    """#,
    "gcp-iamcredentials": #"""
    # Google IAM Credentials: mints service account access tokens, ID tokens and signatures.
    name: gcp-iamcredentials
    description: Google Cloud IAM Service Account Credentials
    hosts: [iamcredentials.googleapis.com]
    sensitive:
      - { methods: [POST], paths: ["/v1/projects/*"] }
    credentials:
      - { in: header, name: Authorization }
    # generateAccessToken mints an OAuth access token (revocable at oauth2.googleapis.com/revoke).
    mints:
      - { methods: [POST], paths: ["/v1/projects/*:generateAccessToken"], json: accessToken }
    """#,
    "gcp-kms": #"""
    # Google Cloud KMS.
    name: gcp-kms
    description: Google Cloud Key Management Service
    hosts: [cloudkms.googleapis.com]
    sensitive:
      - { methods: [POST], paths: ["/v1/projects/*"] }
    credentials:
      - { in: header, name: Authorization }
    """#,
    "gcp-secretmanager": #"""
    # Google Secret Manager.
    name: gcp-secretmanager
    description: Google Cloud Secret Manager
    hosts: [secretmanager.googleapis.com]
    sensitive:
      - { methods: [GET, POST], paths: ["/v1/projects/*"] }
    credentials:
      - { in: header, name: Authorization }
    """#,
    "gcp-sts": #"""
    # Google Security Token Service: workload identity federation token exchange.
    name: gcp-sts
    description: Google Cloud Security Token Service
    hosts: [sts.googleapis.com]
    sensitive:
      - { methods: [POST], paths: ["/v1/token", "/v1beta/token"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: form, name: subject_token }
      - { in: json, name: subjectToken }
    # The exchange mints an OAuth access token (revocable at oauth2.googleapis.com/revoke).
    mints:
      - { methods: [POST], paths: ["/v1/token", "/v1beta/token"], json: access_token }
    """#,
    "github-actions-secrets": #"""
    # GitHub REST API endpoints that read or write Actions secrets and variables.
    name: github-actions-secrets
    description: GitHub Actions secrets API
    hosts: [api.github.com]
    sensitive:
      - { methods: [GET, PUT, DELETE], paths: ["/repos/*/actions/secrets*", "/orgs/*/actions/secrets*", "/repos/*/environments/*/secrets*"] }
    credentials:
      - { in: header, name: Authorization }
    """#,
    "github-app-token": #"""
    # GitHub App installation access tokens: the App's JWT (RS256, signed with the App's private key,
    # valid at most 10 minutes) is exchanged for an installation token (ghs_…, valid one hour), with
    # POST /app/installations/{installation_id}/access_tokens (201, the token in `token`). github.com
    # only: GitHub Enterprise Server serves the same call under /api/v3 of its own host.
    # stepguard cannot verify an App's JWT (it is signed with the App's key), so it counts as a
    # long-lived credential: a policy that lets a step mint App tokens allows it with `credential: any`.
    # A policy may also name github-actions-secrets (same host): each request to api.github.com is
    # then decided by the service whose endpoints (sensitive:, mints:) it matches, and a request
    # that matches neither is denied (see README, "Services that share a host").
    name: github-app-token
    description: GitHub App installation access tokens
    hosts: [api.github.com]
    sensitive:
      - { methods: [POST], paths: ["/app/installations/*/access_tokens"] }
    credentials:
      - { in: header, name: Authorization }
    # The exchange mints an installation token (token): revoked after a violation, or when the
    # service's window closes, with DELETE /installation/token at api.github.com, like GITHUB_TOKEN.
    mints:
      - { methods: [POST], paths: ["/app/installations/*/access_tokens"], json: token }
    """#,
    "github-oidc-token": #"""
    # The GitHub Actions OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL); policy may restrict `audience`.
    name: github-oidc-token
    description: GitHub Actions OIDC token endpoint
    hosts: ["*.actions.githubusercontent.com", "pipelines.actions.githubusercontent.com"]
    sensitive:
      - { methods: [GET], paths: ["/*"] }
    credentials:
      - { in: header, name: Authorization }
    audience_parameter: audience
    """#,
    "hashicorp-vault": #"""
    # HashiCorp Vault: the host is site-specific, give it in the policy (services[].hosts).
    name: hashicorp-vault
    description: HashiCorp Vault
    hosts: []
    hosts_from_policy: true
    sensitive:
      - { methods: [GET, POST, PUT, LIST], paths: ["/v1/*"] }
    credentials:
      - { in: header, name: X-Vault-Token }
      - { in: header, name: Authorization }
      - { in: json, name: jwt }
    # A login returns a token minted for the job (auth.client_token): revocable after a violation
    # or when the service's window closes (revoke-self at VAULT_ADDR).
    mints:
      - { methods: [POST, PUT], paths: ["/v1/auth/*/login", "/v1/auth/*/login/*"], json: auth.client_token }
    """#,
    "npm-publish": #"""
    # npm registry publishing (PUT of a package document) and trusted-publishing token exchange:
    # npm exchanges the job's OIDC token for a short-lived publish token, which the PUT then carries.
    name: npm-publish
    description: npm registry (publish)
    hosts: [registry.npmjs.org]
    sensitive:
      - { methods: [PUT, DELETE], paths: ["/*"] }
      - { methods: [POST], paths: ["/-/npm/v1/oidc/token/exchange/*"] }
    # Scoped package names are one path segment with an encoded slash: /@scope%2fname.
    encoded_slashes: true
    credentials:
      - { in: header, name: Authorization }
    mints:
      - { methods: [POST], paths: ["/-/npm/v1/oidc/token/exchange/*"], json: token }
    """#,
    "pypi-upload": #"""
    # PyPI uploads and trusted publishing: the job's OIDC token is exchanged at pypi.org (or
    # test.pypi.org) for a short-lived API token, which the upload then carries as basic auth.
    name: pypi-upload
    description: Python Package Index (upload)
    hosts: [upload.pypi.org, pypi.org, test.pypi.org]
    sensitive:
      - { methods: [POST], paths: ["/legacy/", "/_/oidc/mint-token"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: json, name: token }
    mints:
      - { methods: [POST], paths: ["/_/oidc/mint-token"], json: token }
    """#,
    "sigstore-fulcio": #"""
    # Sigstore Fulcio: issues short-lived code-signing certificates for an OIDC identity (keyless signing).
    name: sigstore-fulcio
    description: Sigstore Fulcio certificate authority
    hosts: [fulcio.sigstore.dev, fulcio.sigstage.dev]
    sensitive:
      - { methods: [POST], paths: ["/api/v1/signingCert", "/api/v2/signingCert"] }
    credentials:
      - { in: header, name: Authorization }
      - { in: json, name: credentials.oidcIdentityToken }
    """#,
    "sigstore-rekor": #"""
    # Sigstore Rekor: the transparency log that records signatures.
    name: sigstore-rekor
    description: Sigstore Rekor transparency log
    hosts: [rekor.sigstore.dev, rekor.sigstage.dev]
    sensitive:
      - { methods: [POST, PUT], paths: ["/api/v1/log/entries", "/api/v2/log/entries"] }
    credentials: []
    """#,
    "sigstore-tsa": #"""
    # Sigstore timestamp authority (RFC 3161).
    name: sigstore-tsa
    description: Sigstore timestamp authority
    hosts: [timestamp.sigstore.dev, timestamp.sigstage.dev]
    sensitive:
      - { methods: [POST], paths: ["/api/v1/timestamp"] }
    credentials: []
    """#,
]
