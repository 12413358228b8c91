# mirrorlet image: a static binary on distroless. mirrorlet is meant to run
# as a host binary under systemd (deploy/systemd); the image is for
# distribution and for running it in a privileged host-namespace container.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=v0.0.0-dev
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X github.com/mirrorlet/mirrorlet/cmd/mirrorlet/app.Version=${VERSION}" \
    -o /out/mirrorlet ./cmd/mirrorlet

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/mirrorlet /mirrorlet
ENTRYPOINT ["/mirrorlet"]
