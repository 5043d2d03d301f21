# One image per service: docker build --build-arg SERVICE=producer .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG SERVICE
RUN CGO_ENABLED=0 go build -trimpath -o /out/service ./${SERVICE}

# Static binary, no shell, not root.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/service /usr/local/bin/service
COPY lockstep.example.yaml /etc/lockstep/lockstep.yaml
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/service", "--config", "/etc/lockstep/lockstep.yaml"]
